//! Running the reproduction: its exit status is the verdict (0 works,
//! anything else broken). A run that outlives the timeout is killed and
//! counts as broken: a hang (a DNS lookup that never returns) is the
//! failure users bisect for. A flaky repro runs N times per configuration
//! and the majority decides.
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::BisectError;

/// How to run the repro.
#[derive(Debug, Clone)]
pub struct Repro {
    pub argv: Vec<String>,
    pub runs: u32,
    pub timeout: Duration,
}

/// True ("broken") when more than half of `runs` votes are failures; an
/// even split counts as working, so a coin-flip repro never names a culprit.
pub fn majority(votes: impl IntoIterator<Item = bool>, runs: u32) -> bool {
    let fails = votes.into_iter().filter(|&f| f).count() as u64;
    fails * 2 > u64::from(runs)
}

impl Repro {
    /// Run `runs` times; true when the majority failed. Also returns the
    /// number of runs made.
    pub fn fails(&self) -> Result<bool, BisectError> {
        let mut votes = Vec::new();
        for _ in 0..self.runs {
            votes.push(self.once()?);
        }
        Ok(majority(votes, self.runs))
    }

    /// One run: true when it failed (non-zero, killed by a signal, timed out).
    pub fn once(&self) -> Result<bool, BisectError> {
        let mut cmd = Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group: a timeout kills everything it started.
            .process_group(0);
        crate::sys::die_with_us(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| BisectError::Spawn {
            cmd: self.argv[0].clone(),
            err: e,
        })?;
        let started = Instant::now();
        loop {
            if let Some(st) = child.try_wait().map_err(BisectError::Wait)? {
                return Ok(!st.success());
            }
            let stop = crate::signals::stopping();
            if stop || started.elapsed() >= self.timeout {
                // SAFETY: kill(2) on the child's own process group.
                unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
                let _ = child.wait();
                if stop {
                    return Err(BisectError::Interrupted);
                }
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repro(argv: &[&str], timeout_ms: u64) -> Repro {
        Repro {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            runs: 1,
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    #[test]
    fn exit_status_is_the_verdict() {
        assert!(!repro(&["true"], 5000).once().unwrap());
        assert!(repro(&["false"], 5000).once().unwrap());
    }

    #[test]
    fn a_hang_is_killed_and_counts_as_broken() {
        let t = Instant::now();
        assert!(repro(&["sleep", "30"], 200).once().unwrap());
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_missing_command_is_an_error_naming_it() {
        let e = repro(&["/nonexistent/repro"], 100).once().unwrap_err();
        assert!(e.to_string().contains("/nonexistent/repro"), "{e}");
    }

    #[test]
    fn majority_needs_more_than_half() {
        assert!(majority([true, true, false], 3));
        assert!(!majority([true, false, false], 3));
        assert!(!majority([true, false], 2));
        assert!(majority([true], 1));
    }
}
