//! `netwhy reasons`: the drop reasons this kernel knows, with their values.
use anyhow::Result;

use crate::kernel::reasons::DropReasons;

pub fn run() -> Result<()> {
    let r = DropReasons::load()?;
    println!(
        "# source: {:?}; SKB_CONSUMED = {}",
        r.source(),
        r.consumed()
    );
    for (v, name) in r.iter() {
        println!("{v:>8}  {name}");
    }
    Ok(())
}
