//! Ctrl-C / SIGTERM / SIGHUP handling: the first signal asks the current
//! loop to stop (so it can print its summary and undo its changes); a second
//! one exits at once with status 130 (BPF links die with the process; the
//! undo journal lets the next run clean up the rest).
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Install the handlers once and return the shared stop flag.
pub fn stop_flag() -> Arc<AtomicBool> {
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // Order matters: the conditional exit checks the flag before the
            // plain handler sets it, so only a second signal exits.
            let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone());
            let _ = signal_hook::flag::register(sig, flag.clone());
        }
        flag
    })
    .clone()
}

/// True once a stop signal arrived.
pub fn stopping() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::Relaxed))
}
