//! Classic BPF (the language libpcap compiles tcpdump expressions to): the
//! instruction type, a validator that enforces what the in-kernel
//! interpreter (`src/probe/include/cbpf.h`) assumes, and a reference
//! interpreter in Rust.
//!
//! The reference interpreter is the oracle for the BPF C one: unit tests run
//! libpcap-compiled programs through both libpcap's own matcher and this one
//! on packet fixtures, and the C interpreter mirrors this file case by case.
use serde::Serialize;

/// One classic BPF instruction, laid out as `struct sock_filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

impl Insn {
    pub const fn new(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
        Insn { code, jt, jf, k }
    }
}

/// Longest program the in-kernel interpreter accepts (event.h NW_CBPF_MAX).
pub const MAX_INSNS: usize = 128;
/// Scratch memory slots M[0..16].
pub const MEMWORDS: u32 = 16;

// Instruction classes and fields (linux/filter.h, pcap/bpf.h).
pub const LD: u16 = 0x00;
pub const LDX: u16 = 0x01;
pub const ST: u16 = 0x02;
pub const STX: u16 = 0x03;
pub const ALU: u16 = 0x04;
pub const JMP: u16 = 0x05;
pub const RET: u16 = 0x06;
pub const MISC: u16 = 0x07;
pub const W: u16 = 0x00;
pub const H: u16 = 0x08;
pub const B: u16 = 0x10;
pub const IMM: u16 = 0x00;
pub const ABS: u16 = 0x20;
pub const IND: u16 = 0x40;
pub const MEM: u16 = 0x60;
pub const LEN: u16 = 0x80;
pub const MSH: u16 = 0xa0;
pub const X: u16 = 0x08;
pub const A: u16 = 0x10;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CbpfError {
    #[error("the filter compiles to {0} classic BPF instructions; the in-kernel evaluator takes at most {MAX_INSNS}: simplify the expression")]
    TooLong(usize),
    #[error("the filter compiled to an empty program")]
    Empty,
    #[error("instruction {pc}: {what}")]
    Bad { pc: usize, what: &'static str },
}

/// Checks what the in-kernel interpreter relies on: bounded length, forward
/// jumps inside the program, known opcodes, scratch slots in range, and a
/// final RET (so every path ends).
pub fn validate(prog: &[Insn]) -> Result<(), CbpfError> {
    if prog.is_empty() {
        return Err(CbpfError::Empty);
    }
    if prog.len() > MAX_INSNS {
        return Err(CbpfError::TooLong(prog.len()));
    }
    let bad = |pc, what| Err(CbpfError::Bad { pc, what });
    for (pc, i) in prog.iter().enumerate() {
        let next = pc + 1;
        match i.code & 0x07 {
            LD | LDX => {
                let mode = i.code & 0xe0;
                let known = if i.code & 0x07 == LD {
                    matches!(mode, IMM | ABS | IND | MEM | LEN)
                } else {
                    matches!(mode, IMM | MEM | LEN | MSH)
                };
                if !known {
                    return bad(pc, "unknown load mode");
                }
                if mode == MEM && i.k >= MEMWORDS {
                    return bad(pc, "scratch slot out of range");
                }
            }
            ST | STX if i.k >= MEMWORDS => return bad(pc, "scratch slot out of range"),
            ST | STX => {}
            ALU => {
                if !matches!(i.code & 0xf0, 0x00..=0xa0) {
                    return bad(pc, "unknown ALU operation");
                }
            }
            JMP => {
                let op = i.code & 0xf0;
                if op == 0x00 {
                    if next + i.k as usize >= prog.len() {
                        return bad(pc, "jump past the end");
                    }
                } else if op > 0x40 {
                    return bad(pc, "unknown jump");
                } else if next + i.jt.max(i.jf) as usize >= prog.len() {
                    return bad(pc, "jump past the end");
                }
            }
            RET | MISC => {}
            _ => unreachable!(),
        }
    }
    if prog[prog.len() - 1].code & 0x07 != RET {
        return bad(prog.len() - 1, "the program does not end with RET");
    }
    Ok(())
}

/// Runs `prog` on `pkt` (the captured bytes) of a packet `wirelen` bytes
/// long. Returns the RET value: 0 means no match. A load past the captured
/// bytes ends the program with 0, as the kernel and libpcap do.
pub fn run(prog: &[Insn], pkt: &[u8], wirelen: u32) -> u32 {
    let (mut a, mut x) = (0u32, 0u32);
    let mut m = [0u32; MEMWORDS as usize];
    let mut pc = 0usize;
    let load = |off: u32, size: u16| -> Option<u32> {
        let n = match size {
            W => 4,
            H => 2,
            B => 1,
            _ => return None,
        };
        let off = off as usize;
        let b = pkt.get(off..off.checked_add(n)?)?;
        Some(b.iter().fold(0u32, |v, &c| (v << 8) | u32::from(c)))
    };
    while let Some(i) = prog.get(pc) {
        pc += 1;
        match i.code & 0x07 {
            LD => {
                a = match i.code & 0xe0 {
                    IMM => i.k,
                    ABS => match load(i.k, i.code & 0x18) {
                        Some(v) => v,
                        None => return 0,
                    },
                    IND => match load(x.wrapping_add(i.k), i.code & 0x18) {
                        Some(v) => v,
                        None => return 0,
                    },
                    MEM => m[(i.k & 15) as usize],
                    LEN => wirelen,
                    _ => return 0,
                }
            }
            LDX => {
                x = match i.code & 0xe0 {
                    IMM => i.k,
                    MEM => m[(i.k & 15) as usize],
                    LEN => wirelen,
                    MSH => match load(i.k, B) {
                        Some(v) => (v & 0xf) * 4,
                        None => return 0,
                    },
                    _ => return 0,
                }
            }
            ST => m[(i.k & 15) as usize] = a,
            STX => m[(i.k & 15) as usize] = x,
            ALU => {
                let v = if i.code & X != 0 { x } else { i.k };
                a = match i.code & 0xf0 {
                    0x00 => a.wrapping_add(v),
                    0x10 => a.wrapping_sub(v),
                    0x20 => a.wrapping_mul(v),
                    0x30 if v == 0 => return 0,
                    0x30 => a / v,
                    0x40 => a | v,
                    0x50 => a & v,
                    0x60 => a.checked_shl(v).unwrap_or(0),
                    0x70 => a.checked_shr(v).unwrap_or(0),
                    0x80 => a.wrapping_neg(),
                    0x90 if v == 0 => return 0,
                    0x90 => a % v,
                    0xa0 => a ^ v,
                    _ => return 0,
                }
            }
            JMP => {
                let v = if i.code & X != 0 { x } else { i.k };
                let taken = match i.code & 0xf0 {
                    0x00 => {
                        pc += i.k as usize;
                        continue;
                    }
                    0x10 => a == v,
                    0x20 => a > v,
                    0x30 => a >= v,
                    0x40 => a & v != 0,
                    _ => return 0,
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            RET => {
                return match i.code & 0x18 {
                    0x10 => a,
                    0x08 => x,
                    _ => i.k,
                }
            }
            _ => {
                if i.code & 0xf8 == 0x80 {
                    a = x;
                } else {
                    x = a;
                }
            }
        }
    }
    0
}
