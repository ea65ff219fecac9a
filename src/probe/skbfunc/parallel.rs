//! Spreading per-function attach and detach over threads.

/// `f(index, item)` for every item, on up to `threads` scoped threads, in
/// item order.
pub fn map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(usize, &T) -> R + Sync,
) -> Vec<R> {
    if items.is_empty() {
        return Vec::new();
    }
    let chunk = items.len().div_ceil(threads.max(1));
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                let f = &f;
                s.spawn(move || {
                    part.iter()
                        .enumerate()
                        .map(|(i, t)| f(c * chunk + i, t))
                        .collect::<Vec<R>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("attach thread panicked"))
            .collect()
    })
}

/// Drops every item, spread over up to `threads` threads.
pub fn drop_all<T: Send>(mut items: Vec<T>, threads: usize) {
    if items.is_empty() {
        return;
    }
    let chunk = items.len().div_ceil(threads.max(1));
    std::thread::scope(|s| {
        while !items.is_empty() {
            let part: Vec<T> = items.drain(..chunk.min(items.len())).collect();
            s.spawn(move || drop(part));
        }
    });
}

/// Threads attaching kprobes or fentry clones (kernel work per function is
/// partly serialised by ftrace locks; the rest spreads over CPUs).
pub const ATTACH_THREADS: usize = 8;
/// Threads closing links: mostly asleep in grace periods.
pub const DETACH_THREADS: usize = 64;

/// The kprobe program shared by the attaching threads.
pub struct SharedProg<'a>(pub &'a libbpf_rs::ProgramMut<'static>);
// SAFETY: attaching only reads the program (fd, name) and allocates a new
// link per call; libbpf keeps no per-program state for kprobe attachment.
unsafe impl Sync for SharedProg<'_> {}
impl SharedProg<'_> {
    // A method, not `.0`: closures capture fields precisely, and the field
    // itself is not Sync.
    pub fn get(&self) -> &libbpf_rs::ProgramMut<'static> {
        self.0
    }
}

/// Each function costs about two descriptors (link + perf event or prog);
/// the usual soft limit of 1024 is below pwru's ~1.5k functions.
pub fn raise_fd_limit(need: usize) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on valid structs.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return;
        }
        let want = (need as libc::rlim_t + 256).max(r.rlim_cur);
        if want > r.rlim_cur {
            let raised = libc::rlimit {
                rlim_cur: want,
                rlim_max: want.max(r.rlim_max),
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                let soft = libc::rlimit {
                    rlim_cur: r.rlim_max,
                    rlim_max: r.rlim_max,
                };
                libc::setrlimit(libc::RLIMIT_NOFILE, &soft);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn map_keeps_order_and_indices() {
        let v: Vec<u32> = (0..103).collect();
        let out = super::map(&v, 8, |i, x| (i as u32, x * 2));
        assert_eq!(out.len(), 103);
        for (i, (idx, d)) in out.iter().enumerate() {
            assert_eq!(*idx as usize, i);
            assert_eq!(*d, 2 * i as u32);
        }
        assert!(super::map(&[] as &[u8], 4, |_, x| *x).is_empty());
    }

    #[test]
    fn drop_all_drops_everything() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static DROPPED: AtomicUsize = AtomicUsize::new(0);
        struct D;
        impl Drop for D {
            fn drop(&mut self) {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        }
        super::drop_all((0..77).map(|_| D).collect(), 16);
        assert_eq!(DROPPED.load(Ordering::Relaxed), 77);
    }
}
