//! Cuts the committed offline fixture out of a real qemu dump: only the pages
//! the log reader touches, plus vmcore-dmesg's output on the full dump as the
//! oracle. `cargo run -p netwhy-vmcore --example trim-fixture -- DUMP.elf OUTDIR`
#[path = "../tests/support/synth.rs"]
mod synth;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (src, dir) = (&args[1], std::path::Path::new(&args[2]));
    let dump = netwhy_vmcore::Dump::open(src).expect("open dump");
    let t = synth::trim(&dump);
    let elf = synth::write_elf(&t);
    std::fs::write(dir.join("trimmed.elf.gz"), synth::gzip(&elf)).unwrap();
    let o = std::process::Command::new("vmcore-dmesg")
        .arg(src)
        .output()
        .expect("vmcore-dmesg");
    assert!(o.status.success());
    std::fs::write(
        dir.join("trimmed.vmcore-dmesg.txt.gz"),
        synth::gzip(&o.stdout),
    )
    .unwrap();
    println!("{} pages, ELF {} bytes", t.pages.len(), elf.len());
}
