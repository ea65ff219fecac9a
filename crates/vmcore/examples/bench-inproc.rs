//! In-process cost of what `dmesg --no-header` does, without process
//! start-up: open, walk the log (no output), walk + render to memory.
//! Medians of N runs (each opens the dump afresh, so its mmap faults count).
//! `cargo run --release -p netwhy-vmcore --example bench-inproc -- DUMP [N]`
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).expect("usage: bench-inproc DUMP [N]");
    let n: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20);
    let (mut open, mut walk, mut render) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let t0 = Instant::now();
        let d = netwhy_vmcore::Dump::open(path).expect("open");
        let t1 = Instant::now();
        let mut count = 0usize;
        d.walk_log(&mut |_| count += 1).expect("walk");
        let t2 = Instant::now();
        let mut out = Vec::new();
        let mut w = netwhy_vmcore::render::TextWriter::new(&mut out, &Default::default());
        d.walk_log(&mut |r| w.push(r).expect("render"))
            .expect("walk");
        w.finish().expect("render");
        let t3 = Instant::now();
        open.push(t1 - t0);
        walk.push(t2 - t1);
        render.push(t3 - t2);
        assert!(count > 0 && !out.is_empty());
    }
    println!(
        "median of {n}: open {:?}  walk {:?}  walk+render {:?}",
        median(open),
        median(walk),
        median(render)
    );
}
