//! Builds (or finds in the cache) the real qemu crash dumps the tests use and
//! prints their directory. `cargo run -p netwhy-vmcore --example make-fixtures`.
#[path = "../tests/support/fixtures.rs"]
mod fixtures;

fn main() {
    match fixtures::ensure_all() {
        Ok(dir) => println!("{}", dir.display()),
        Err(e) => {
            eprintln!("make-fixtures: {e}");
            std::process::exit(1);
        }
    }
}
