//! LZO1X decompression, for kdump pages written by `makedumpfile -l`
//! (liblzo2's lzo1x_1 compressor). Written for this crate from the format
//! description (the Linux kernel's Documentation/staging/lzo.rst): safe
//! Rust, every read of the input, write of the output and back-reference
//! checked, so a corrupt page is an error, never a panic or an overrun.
//!
//! The stream is a sequence of instructions. Each match copies `len` bytes
//! from `dist` bytes back in the output and then copies 0–3 literal bytes
//! (the "state" S, held in the instruction's low bits). What an opcode below
//! 16 means depends on the state left by the previous instruction: after a
//! match with no literals it starts a literal run; after 1–3 literals it is
//! a 2-byte match within 1 KiB; after a run of 4+ literals a 3-byte match
//! 2–3 KiB back. The stream ends with a far match of distance 16384
//! (bytes 0x11 0x00 0x00).

/// Why a stream does not decompress.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LzoError {
    #[error("input ends inside an instruction (at byte {0})")]
    InputOverrun(usize),
    #[error("output would exceed the {0}-byte buffer")]
    OutputOverrun(usize),
    #[error("match {dist} bytes back at output offset {at} reaches before the start")]
    LookBehind { dist: usize, at: usize },
    #[error("{0} bytes follow the end marker")]
    Trailing(usize),
}

struct Input<'a> {
    src: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    fn byte(&mut self) -> Result<usize, LzoError> {
        let b = *self
            .src
            .get(self.pos)
            .ok_or(LzoError::InputOverrun(self.pos))?;
        self.pos += 1;
        Ok(usize::from(b))
    }

    fn le16(&mut self) -> Result<usize, LzoError> {
        Ok(self.byte()? | self.byte()? << 8)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], LzoError> {
        let s = self
            .pos
            .checked_add(n)
            .and_then(|end| self.src.get(self.pos..end))
            .ok_or(LzoError::InputOverrun(self.pos))?;
        self.pos += n;
        Ok(s)
    }

    /// A length whose opcode field was 0: each following zero byte adds
    /// 255, the first non-zero byte ends it and is added with `base`.
    /// Bounded by the input: every zero consumes a byte.
    fn long_len(&mut self, base: usize) -> Result<usize, LzoError> {
        let mut n = base;
        loop {
            match self.byte()? {
                0 => n += 255,
                b => return Ok(n + b),
            }
        }
    }
}

struct Output<'a> {
    dst: &'a mut [u8],
    pos: usize,
}

impl Output<'_> {
    fn room(&self, n: usize) -> Result<usize, LzoError> {
        self.pos
            .checked_add(n)
            .filter(|&end| end <= self.dst.len())
            .ok_or(LzoError::OutputOverrun(self.dst.len()))
    }

    fn literals(&mut self, lit: &[u8]) -> Result<(), LzoError> {
        let end = self.room(lit.len())?;
        self.dst[self.pos..end].copy_from_slice(lit);
        self.pos = end;
        Ok(())
    }

    /// Copies `len` bytes from `dist` back; when they overlap (dist < len)
    /// the copy repeats the last `dist` bytes, as the format intends.
    fn back_ref(&mut self, dist: usize, len: usize) -> Result<(), LzoError> {
        if dist == 0 || dist > self.pos {
            return Err(LzoError::LookBehind { dist, at: self.pos });
        }
        let end = self.room(len)?;
        let from = self.pos - dist;
        if dist >= len {
            self.dst.copy_within(from..from + len, self.pos);
        } else {
            for i in 0..len {
                self.dst[self.pos + i] = self.dst[from + i];
            }
        }
        self.pos = end;
        Ok(())
    }
}

/// Decompresses one LZO1X stream into `dst`; returns the bytes written.
/// The whole input must be used: bytes after the end marker are an error.
pub fn decompress(src: &[u8], dst: &mut [u8]) -> Result<usize, LzoError> {
    let mut inp = Input { src, pos: 0 };
    let mut out = Output { dst, pos: 0 };
    // Literals copied by the previous instruction: 0–3, or 4 for "a run".
    let mut state = 0usize;
    // A first byte above 17 is a literal run of (byte - 17) bytes.
    if let Some(&first) = src.first() {
        if first > 17 {
            inp.pos = 1;
            let n = usize::from(first) - 17;
            out.literals(inp.take(n)?)?;
            state = n.min(4);
        }
    }
    loop {
        let op = inp.byte()?;
        let (dist, len, s) = match op {
            0..=15 if state == 0 => {
                // A run of 4 or more literals.
                let n = 3 + if op == 0 { inp.long_len(15)? } else { op };
                out.literals(inp.take(n)?)?;
                state = 4;
                continue;
            }
            0..=15 => {
                let h = inp.byte()?;
                let d = (op >> 2) & 3;
                if state < 4 {
                    ((h << 2) + d + 1, 2, op & 3)
                } else {
                    ((h << 2) + d + 2049, 3, op & 3)
                }
            }
            16..=31 => {
                let len = 2 + match op & 7 {
                    0 => inp.long_len(7)?,
                    l => l,
                };
                let v = inp.le16()?;
                let dist = 16384 + ((op & 8) << 11) + (v >> 2);
                if dist == 16384 {
                    return match src.len() - inp.pos {
                        0 => Ok(out.pos),
                        n => Err(LzoError::Trailing(n)),
                    };
                }
                (dist, len, v & 3)
            }
            32..=63 => {
                let len = 2 + match op & 31 {
                    0 => inp.long_len(31)?,
                    l => l,
                };
                let v = inp.le16()?;
                ((v >> 2) + 1, len, v & 3)
            }
            _ => {
                // 64..=255: 3–8 bytes within 2 KiB.
                let h = inp.byte()?;
                ((h << 3) + ((op >> 2) & 7) + 1, (op >> 5) + 1, op & 3)
            }
        };
        out.back_ref(dist, len)?;
        out.literals(inp.take(s)?)?;
        state = s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const END: [u8; 3] = [0x11, 0, 0];

    fn run(src: &[u8], cap: usize) -> Result<Vec<u8>, LzoError> {
        let mut out = vec![0u8; cap];
        let n = decompress(src, &mut out)?;
        out.truncate(n);
        Ok(out)
    }

    #[test]
    fn hand_built_streams() {
        // First-byte literal run, then the end marker.
        let mut s = vec![17 + 5];
        s.extend_from_slice(b"hello");
        s.extend_from_slice(&END);
        assert_eq!(run(&s, 16).unwrap(), b"hello");

        // "abc" then an overlapping 3..8-byte match (op 64..255): dist 3,
        // len 6 repeats "abc" twice; S=1 then copies one literal "!".
        // op = 0b100_DDD_SS with len 5+LL: use 0b1_01_010_01 (len 6, D=2).
        let mut s = vec![17 + 3];
        s.extend_from_slice(b"abc");
        s.push(0b1010_1001);
        s.push(0); // H = 0: dist = (0 << 3) + 2 + 1 = 3
        s.push(b'!');
        s.extend_from_slice(&END);
        assert_eq!(run(&s, 64).unwrap(), b"abcabcabc!");

        // After a match with S = 0, op 0 is a long literal run:
        // 3 + 15 + 255 (one zero byte) + 2 = 275 literals.
        let mut s = vec![17 + 4];
        s.extend_from_slice(b"wxyz");
        // M3 (op 32..63): len 2 + 4; LE16 = D << 2 | S with D = 2: dist 3.
        s.extend_from_slice(&[0x20 | 4, 2 << 2, 0]);
        let lits: Vec<u8> = (0..275u32).map(|i| (i % 251) as u8).collect();
        s.extend_from_slice(&[0, 0, 2]);
        s.extend_from_slice(&lits);
        s.extend_from_slice(&END);
        let got = run(&s, 400).unwrap();
        assert_eq!(&got[..10], b"wxyzxyzxyz");
        assert_eq!(&got[10..], &lits[..]);
    }

    #[test]
    fn corrupt_streams_are_errors() {
        // Match reaching before the output start.
        let s = [17 + 1, b'a', 0b0100_0100, 0, 0x11, 0, 0];
        assert_eq!(run(&s, 16), Err(LzoError::LookBehind { dist: 2, at: 1 }));
        // Output buffer too small.
        let mut s = vec![17 + 5];
        s.extend_from_slice(b"hello");
        s.extend_from_slice(&END);
        assert_eq!(run(&s, 4), Err(LzoError::OutputOverrun(4)));
        // Trailing garbage, and no end marker at all.
        let mut t = s.clone();
        t.push(0);
        assert_eq!(run(&t, 16), Err(LzoError::Trailing(1)));
        assert!(matches!(run(&s[..6], 16), Err(LzoError::InputOverrun(_))));
        assert!(matches!(run(&[], 16), Err(LzoError::InputOverrun(0))));
        // A long length made only of zeros runs out of input, not of time.
        let z = vec![0u8; 100_000];
        assert!(matches!(run(&z, 4096), Err(LzoError::InputOverrun(_))));
    }
}
