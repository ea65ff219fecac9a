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
