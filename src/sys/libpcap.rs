//! libpcap's filter compiler, loaded with dlopen(3) the first time a
//! filter is compiled rather than linked into the binary.
//!
//! Why: Debian's libpcap pulls in libdbus, libsystemd, libgcrypt, liblzma,
//! libzstd and more. Linked, every netwhy command paid their loading at
//! start-up (about 1 ms: `netwhy vmcore dmesg` on a small dump takes less
//! than that in all) for a compiler only `trace`/`run` filters use. Five
//! functions are needed; their C signatures are stable since libpcap 0.8.
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};

/// struct bpf_insn.
#[repr(C)]
struct BpfInsn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

/// struct bpf_program.
#[repr(C)]
struct BpfProgram {
    bf_len: c_uint,
    bf_insns: *mut BpfInsn,
}

type OpenDead = unsafe extern "C" fn(c_int, c_int) -> *mut c_void;
type Compile =
    unsafe extern "C" fn(*mut c_void, *mut BpfProgram, *const c_char, c_int, u32) -> c_int;
type FreeCode = unsafe extern "C" fn(*mut BpfProgram);
type GetErr = unsafe extern "C" fn(*mut c_void) -> *mut c_char;
type Close = unsafe extern "C" fn(*mut c_void);

/// PCAP_NETMASK_UNKNOWN: `ip broadcast` is refused rather than guessed.
const NETMASK_UNKNOWN: u32 = 0xffff_ffff;
/// Snapshot length for the dead handle: longer than any packet we see.
const SNAPLEN: c_int = 262_144;

struct Lib {
    open_dead: OpenDead,
    compile: Compile,
    freecode: FreeCode,
    geterr: GetErr,
    close: Close,
}

fn sym<T: Copy>(h: *mut c_void, name: &CStr) -> Result<T, String> {
    // SAFETY: h is a live handle from dlopen; name is NUL-terminated.
    let p = unsafe { libc::dlsym(h, name.as_ptr()) };
    if p.is_null() {
        return Err(format!("libpcap has no {}", name.to_string_lossy()));
    }
    // SAFETY: T is the function pointer type of that libpcap symbol.
    Ok(unsafe { std::mem::transmute_copy::<*mut c_void, T>(&p) })
}

fn load() -> Result<Lib, String> {
    let mut h = std::ptr::null_mut();
    for name in [c"libpcap.so.0.8", c"libpcap.so.1", c"libpcap.so"] {
        // SAFETY: a NUL-terminated library name; the handle is kept for
        // the life of the process (never dlclose'd).
        h = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if !h.is_null() {
            break;
        }
    }
    if h.is_null() {
        return Err(
            "libpcap is not installed (Debian: apt-get install libpcap0.8); it compiles tcpdump expressions"
                .into(),
        );
    }
    Ok(Lib {
        open_dead: sym(h, c"pcap_open_dead")?,
        compile: sym(h, c"pcap_compile")?,
        freecode: sym(h, c"pcap_freecode")?,
        geterr: sym(h, c"pcap_geterr")?,
        close: sym(h, c"pcap_close")?,
    })
}

fn lib() -> Result<&'static Lib, String> {
    static LIB: std::sync::OnceLock<Result<Lib, String>> = std::sync::OnceLock::new();
    LIB.get_or_init(load).as_ref().map_err(Clone::clone)
}

/// Compiles `expr` for `linktype` (optimised, as tcpdump does) into
/// `struct bpf_insn`s as (code, jt, jf, k). The error is libpcap's own
/// message ("syntax error", "unknown host 'x'").
pub fn compile(expr: &str, linktype: c_int) -> Result<Vec<(u16, u8, u8, u32)>, String> {
    let l = lib()?;
    let c = CString::new(expr).map_err(|_| "a NUL byte in the expression".to_string())?;
    // SAFETY: plain libpcap calls on a handle we own and close below; the
    // program is freed with pcap_freecode after its instructions are copied.
    unsafe {
        let p = (l.open_dead)(linktype, SNAPLEN);
        if p.is_null() {
            return Err("pcap_open_dead failed".into());
        }
        let mut prog = BpfProgram {
            bf_len: 0,
            bf_insns: std::ptr::null_mut(),
        };
        let rc = (l.compile)(p, &mut prog, c.as_ptr(), 1, NETMASK_UNKNOWN);
        let out = if rc != 0 {
            let e = (l.geterr)(p);
            Err(if e.is_null() {
                "pcap_compile failed".to_string()
            } else {
                CStr::from_ptr(e).to_string_lossy().trim().to_string()
            })
        } else {
            let insns = if prog.bf_insns.is_null() {
                &[][..]
            } else {
                std::slice::from_raw_parts(prog.bf_insns, prog.bf_len as usize)
            };
            let v = insns.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect();
            (l.freecode)(&mut prog);
            Ok(v)
        };
        (l.close)(p);
        out
    }
}

/// Which libpcap the dynamic loader finds, for `netwhy --version` (None:
/// not installed, so `trace` cannot compile tcpdump expressions).
pub fn library_name() -> Option<&'static str> {
    ["libpcap.so.0.8", "libpcap.so.1", "libpcap.so"]
        .into_iter()
        .find(|n| {
            let c = std::ffi::CString::new(*n).expect("no NUL");
            // SAFETY: a NUL-terminated name; RTLD_NOLOAD|RTLD_LAZY only
            // checks, and the handle is closed again at once.
            let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_LAZY) };
            if h.is_null() {
                return false;
            }
            // SAFETY: h is a live handle from dlopen above.
            unsafe { libc::dlclose(h) };
            true
        })
}
