//! Routes, rules and the nft ruleset of a named namespace, put back for
//! `netwhy bisect` (its [`super::Action::RestoreNetnsRoutes`] and
//! [`super::Action::RestoreNetnsNft`]), and the `nft` runner bisect uses.
//!
//! nft tables are written with nft(8) itself, not over netlink: a table's
//! text is the one form that can be read on one side and loaded on the
//! other (sets, maps, flowtables, objects and every expression included),
//! and `nft -f` loads a whole script as one transaction, so a restore is
//! atomic: `flush ruleset` and the saved ruleset commit together or not
//! at all.
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// Run `nft ARGS` inside named netns `netns` with `stdin`; its stdout.
/// Ok(None) when the namespace is gone.
pub fn nft_in(netns: &str, args: &[&str], stdin: &str) -> io::Result<Option<String>> {
    let file = match File::open(Path::new("/run/netns").join(netns)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let stdin = stdin.to_string();
    // A child forked by a thread that entered the namespace lives in it.
    crate::sys::netns::run_in(file, move || -> io::Result<String> {
        let mut child = Command::new("nft")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot run nft: {e} (install nftables)"))
            })?;
        if let Some(mut i) = child.stdin.take() {
            i.write_all(stdin.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let first = err.lines().next().unwrap_or("failed").trim().to_string();
            return Err(io::Error::other(format!("nft {}: {first}", args.join(" "))));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    })
    .map_err(io::Error::other)?
    .map(Some)
}

/// The script that makes the ruleset exactly `ruleset`, atomically.
pub fn reload_script(ruleset: &str) -> String {
    format!("flush ruleset\n{ruleset}")
}

/// [`super::Action::RestoreNetnsNft`]: only when the ruleset (without
/// counter values) differs from the saved one, so counters survive a run
/// that never touched nft.
pub fn restore_nft(netns: &str, ruleset: &str, stateless: &str) -> io::Result<()> {
    match nft_in(netns, &["-s", "list", "ruleset"], "")? {
        None => Ok(()),
        Some(now) if now == stateless => Ok(()),
        Some(_) => nft_in(netns, &["-f", "-"], &reload_script(ruleset)).map(|_| ()),
    }
}
