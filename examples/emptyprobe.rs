//! Benchmark baseline for bench/drops: attach an empty BPF program to
//! tp_btf/kfree_skb (netwhy's own hook) and hold it until SIGINT/SIGTERM.
use std::sync::atomic::Ordering;

use netwhy::probe::backend::Hook;
use netwhy::probe::drop::{DropOptions, DropProbe};

fn main() {
    let stop = netwhy::signals::stop_flag();
    let opts = DropOptions {
        bench_empty: true,
        hook: Some(Hook::TpBtf),
        ..DropOptions::default()
    };
    let _probe = DropProbe::start(&opts).expect("attach empty program");
    eprintln!("emptyprobe: attached to tp_btf/kfree_skb");
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
