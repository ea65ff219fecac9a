//! Ctrl-C / SIGTERM / SIGHUP handling: the first signal asks the current
//! loop to stop (so it can print its summary and undo its changes); a second
//! one exits at once with status 130 (BPF links die with the process; the
//! undo journal lets the next run clean up the rest). An exit that quick
//! runs no destructor, so whatever must still reach the terminal (leaving
//! the live table's alternate screen) is registered beforehand as bytes
//! the handler writes to stdout.
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Bytes for stdout on a hard exit (see [`on_hard_exit_write`]).
static EXIT_BYTES: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static EXIT_LEN: AtomicUsize = AtomicUsize::new(0);

/// Install the handlers once and return the shared stop flag.
pub fn stop_flag() -> Arc<AtomicBool> {
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            let f = flag.clone();
            // SAFETY: the handler only touches atomics and calls write(2)
            // and _exit(2), which are async-signal-safe.
            let _ = unsafe {
                signal_hook::low_level::register(sig, move || {
                    if f.swap(true, Ordering::SeqCst) {
                        hard_exit();
                    }
                })
            };
        }
        flag
    })
    .clone()
}

/// The second signal: write the registered bytes, exit 130.
fn hard_exit() -> ! {
    let len = EXIT_LEN.load(Ordering::SeqCst);
    let p = EXIT_BYTES.load(Ordering::SeqCst);
    if len > 0 && !p.is_null() {
        // SAFETY: p and len come from one &'static [u8] (see
        // on_hard_exit_write, which clears len before changing p).
        unsafe { libc::write(1, p.cast(), len) };
    }
    // SAFETY: _exit ends the process without running anything else.
    unsafe { libc::_exit(130) }
}

/// What to write to stdout if a second signal ends netwhy at once (the
/// live table registers how to leave its screen); `None` clears it.
pub fn on_hard_exit_write(bytes: Option<&'static [u8]>) {
    EXIT_LEN.store(0, Ordering::SeqCst);
    let (p, n) = bytes.map_or((std::ptr::null_mut(), 0), |b| {
        (b.as_ptr().cast_mut(), b.len())
    });
    EXIT_BYTES.store(p, Ordering::SeqCst);
    EXIT_LEN.store(n, Ordering::SeqCst);
}

/// True once a stop signal arrived.
pub fn stopping() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::Relaxed))
}
