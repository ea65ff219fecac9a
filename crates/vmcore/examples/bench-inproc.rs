//! In-process cost of open + read_log + render, without process start-up.
//! `cargo run --release -p netwhy-vmcore --example bench-inproc -- DUMP [N]`
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20);
    let mut times = Vec::new();
    for _ in 0..n {
        let t0 = Instant::now();
        let d = netwhy_vmcore::Dump::open(&args[1]).expect("open");
        let t1 = Instant::now();
        let log = d.read_log().expect("read");
        let t2 = Instant::now();
        let mut out = Vec::new();
        netwhy_vmcore::render::write_text(&mut out, &log.records, &Default::default()).unwrap();
        let t3 = Instant::now();
        times.push((t1 - t0, t2 - t1, t3 - t2));
    }
    let best = times.iter().min_by_key(|t| t.0 + t.1 + t.2).unwrap();
    println!(
        "open {:?}  read_log {:?}  render {:?}",
        best.0, best.1, best.2
    );
}
