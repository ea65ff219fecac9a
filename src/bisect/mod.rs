//! `netwhy bisect`: which of BROKEN's network settings break a repro.
//!
//! The settings of BROKEN that differ from a good side (a fresh namespace's
//! defaults, another namespace, or a sysctl file) are collected: sysctls
//! ([`collect`]), and with `--what` routes and rules ([`routes`]) and nft
//! tables ([`nft`]), each a [`setting::Setting`]; the repro must fail as BROKEN is and pass with every one
//! reverted; then delta debugging ([`ddmin`]) applies mixes of good and
//! broken values inside BROKEN ([`apply`]) and reruns the repro
//! ([`runner`]) until a minimal set that still breaks it is left. Every
//! change is journalled first (`undo`), so BROKEN ends as it started on
//! every exit path, including the next netwhy after a SIGKILL.
pub mod apply;
mod apply_net;
pub mod collect;
pub mod ddmin;
pub mod explain;
pub mod fix;
pub mod nft;
pub mod report;
pub mod routes;
pub mod runner;
pub mod setting;

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::diagnose::finding::Finding;
use apply::Target;
use collect::{Setting, Side, Skipped};
use runner::Repro;

#[derive(Debug, thiserror::Error)]
pub enum BisectError {
    #[error("netwhy bisect changes namespace settings: run it as root (sudo)")]
    Privilege,
    #[error("no network namespace named '{0}': `ip netns list` shows them (create one with `ip netns add`)")]
    NoNetns(String),
    #[error("{0}")]
    Io(String),
    #[error("undo journal in /run/netwhy: {0}")]
    Journal(std::io::Error),
    #[error("good file {0}: {1}")]
    GoodFile(PathBuf, String),
    #[error("cannot run the repro `{cmd}`: {err} (give a command that exists, after --)")]
    Spawn { cmd: String, err: std::io::Error },
    #[error("waiting for the repro: {0}")]
    Wait(std::io::Error),
    #[error("interrupted; every setting was restored")]
    Interrupted,
    #[error(
        "the repro passes on {0} as it is: nothing to bisect (check the command fails there first)"
    )]
    NotBroken(String),
    #[error("the difference is not in these settings: the repro still fails with all {0} differing settings reverted{1}; {2}")]
    Elsewhere(usize, String, String),
    #[error("{0} has no settings that differ from the good side{1}: the difference is not in these settings; {2}")]
    NoDifference(String, String, String),
    #[error("--what {0} needs a good namespace (--good NETNS or --good defaults): --good-file holds sysctls only")]
    FileHasNo(String),
    #[error("explain during the failing repro: {0}")]
    Explain(String),
    #[error("{0} did not end as it started: {1}")]
    NotRestored(String, String),
}

/// What the good side is.
#[derive(Debug, Clone)]
pub enum Good {
    /// A fresh namespace's values (made for the purpose, then removed).
    Defaults,
    Netns(String),
    File(PathBuf),
}

/// Which kinds of settings are compared (`--what`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct What {
    pub sysctl: bool,
    pub route: bool,
    pub nft: bool,
}

impl What {
    /// `--what` words: sysctl, route, nft.
    pub fn parse(words: &[String]) -> Result<What, String> {
        let mut w = What {
            sysctl: false,
            route: false,
            nft: false,
        };
        for word in words {
            match word.as_str() {
                "sysctl" => w.sysctl = true,
                "route" => w.route = true,
                "nft" => w.nft = true,
                other => {
                    return Err(format!(
                        "--what {other}: not a kind of setting (use sysctl, route, nft, comma-separated)"
                    ))
                }
            }
        }
        Ok(w)
    }

    /// What is not compared, for the "difference is elsewhere" errors.
    fn not_compared(&self) -> String {
        let mut v = Vec::new();
        if !self.sysctl {
            v.push("sysctls");
        }
        if !self.route {
            v.push("routes and rules");
        }
        if !self.nft {
            v.push("the nft ruleset");
        }
        let more = if v.is_empty() {
            String::new()
        } else {
            format!(
                "{} (compare them with --what sysctl,route,nft) nor ",
                v.join(", ")
            )
        };
        format!("not compared: {more}addresses, devices, neighbours, iptables-legacy, tc")
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub netns: String,
    pub good: Good,
    pub what: What,
    pub repro: Repro,
    pub allow_host: bool,
    /// Capture what `explain` sees during the failing repro.
    pub explain: bool,
}

/// One tested configuration.
#[derive(Debug, Clone, Serialize)]
#[serde(remote = "Self")]
pub struct Step {
    pub step: usize,
    /// What was tested: "as is", "all good" or "mix".
    pub phase: &'static str,
    /// Settings at their broken value (of `of`).
    pub broken: usize,
    pub of: usize,
    /// "broken" (the repro failed) or "works".
    pub result: &'static str,
    pub runs: u32,
    pub ms: u64,
}
crate::json_record!(Step, "bisect_step");

/// The answer.
#[derive(Debug, Clone, Serialize)]
#[serde(remote = "Self")]
pub struct Outcome {
    pub netns: String,
    pub culprits: Vec<Setting>,
    /// Repro runs in all.
    pub runs: u64,
    /// Configurations tested.
    pub steps: usize,
    /// Settings that differed and were bisected.
    pub differences: usize,
    pub skipped: Vec<Skipped>,
    /// Commands that put the good values back (`sysctl -w`, `ip route`,
    /// `nft`), each once.
    pub fix: Vec<String>,
    #[serde(skip)]
    pub explain: Vec<Finding>,
}
crate::json_record!(Outcome, "bisect_result");

/// Run the whole bisection; `progress` sees each step as it ends.
pub fn run(opts: &Options, progress: &mut dyn FnMut(&Step)) -> Result<Outcome, BisectError> {
    if !crate::sys::is_root() {
        return Err(BisectError::Privilege);
    }
    if let Good::File(_) = opts.good {
        if opts.what.route || opts.what.nft {
            let w = if opts.what.route { "route" } else { "nft" };
            return Err(BisectError::FileHasNo(w.into()));
        }
    }
    let mut target = Target::open(&opts.netns)?;
    let host = apply::read_host()?;
    let broken = target.read()?;
    let good = good_side(opts, &mut target)?;
    let (mut settings, mut skipped) = if opts.what.sysctl {
        collect::diff(&broken, &good.sysctls, &host, opts.allow_host)
    } else {
        (Vec::new(), Vec::new())
    };
    if opts.what.route {
        let mine = apply::routes_of(&opts.netns)?;
        settings.extend(routes::diff(&mine, &good.routes));
    }
    if opts.what.nft {
        let mine = nft::split(&nft::stateless(&opts.netns)?);
        settings.extend(nft::diff(&mine, &good.nft));
    }
    if settings.is_empty() {
        return Err(BisectError::NoDifference(
            opts.netns.clone(),
            skipped_note(&skipped),
            opts.what.not_compared(),
        ));
    }
    target.protect(&broken, &settings)?;
    let mut runs = 0u64;
    let mut step = 0usize;
    let n = settings.len();
    let mut test = |settings: &[Setting], bad: &[usize], phase: &'static str, t: &mut Target| {
        let started = Instant::now();
        let failed = t.with(settings, bad, || opts.repro.fails())?;
        runs += u64::from(opts.repro.runs);
        step += 1;
        progress(&Step {
            step,
            phase,
            broken: bad.len(),
            of: settings.len(),
            result: if failed { "broken" } else { "works" },
            runs: opts.repro.runs,
            ms: started.elapsed().as_millis() as u64,
        });
        Ok::<bool, BisectError>(failed)
    };
    let all: Vec<usize> = (0..n).collect();
    if !test(&settings, &all, "as is", &mut target)? {
        return Err(BisectError::NotBroken(opts.netns.clone()));
    }
    // Keys that refuse their good value (or their own) cannot be mixed.
    let (settings, refused) = target.preflight(settings)?;
    skipped.extend(refused);
    let n = settings.len();
    let all: Vec<usize> = (0..n).collect();
    if n == 0 || test(&settings, &[], "all good", &mut target)? {
        return Err(BisectError::Elsewhere(
            n,
            skipped_note(&skipped),
            opts.what.not_compared(),
        ));
    }
    let culprits = {
        let mut memo = ddmin::Memo::new(|bad: &[usize]| test(&settings, bad, "mix", &mut target));
        // All broken is BROKEN as it was: known to fail.
        memo.remember(&all, true);
        let found = ddmin::ddmin(&all, &mut memo)?;
        found
            .iter()
            .map(|&i| settings[i].clone())
            .collect::<Vec<_>>()
    };
    let explain = if opts.explain {
        let idx: Vec<usize> = (0..n)
            .filter(|i| culprits.contains(&settings[*i]))
            .collect();
        let ino = target.inode;
        let name = opts.netns.clone();
        // The culprits are the answer; a capture that cannot start (no
        // BTF, no BPF) costs only the explanation.
        match target.with(&settings, &idx, || explain::during(&opts.repro, ino, &name)) {
            Ok(f) => f,
            Err(BisectError::Explain(e)) => {
                crate::log::warn(format_args!(
                    "cannot show what explain sees ({e}); --no-explain skips it"
                ));
                Vec::new()
            }
            Err(e) => return Err(e),
        }
    } else {
        Vec::new()
    };
    target.restore(&broken)?;
    let good_ns = match &opts.good {
        Good::Netns(n) => Some(n.as_str()),
        _ => None,
    };
    let fix = fix::lines(&opts.netns, good_ns, &culprits);
    Ok(Outcome {
        netns: opts.netns.clone(),
        culprits,
        runs,
        steps: step,
        differences: n,
        skipped,
        fix,
        explain,
    })
}

fn skipped_note(skipped: &[Skipped]) -> String {
    if skipped.is_empty() {
        return String::new();
    }
    let host = skipped
        .iter()
        .filter(|s| s.why.contains("--allow-host-changes"))
        .count();
    let mut note = format!(" ({} more differ but were skipped", skipped.len());
    if host > 0 {
        note.push_str(&format!(", {host} host-global: try --allow-host-changes"));
    }
    note.push(')');
    note
}

/// Everything of the good side that is compared.
struct GoodSide {
    sysctls: Side,
    routes: Vec<crate::state::route_set::Entry>,
    nft: nft::Tables,
}

fn good_side(opts: &Options, target: &mut Target) -> Result<GoodSide, BisectError> {
    match &opts.good {
        Good::Defaults => {
            let (sysctls, routes) = target.scratch_defaults()?;
            // A fresh namespace has no nft tables.
            Ok(GoodSide {
                sysctls,
                routes,
                nft: Vec::new(),
            })
        }
        Good::Netns(name) => Ok(GoodSide {
            sysctls: apply::read_netns(name)?,
            routes: if opts.what.route {
                apply::routes_of(name)?
            } else {
                Vec::new()
            },
            nft: if opts.what.nft {
                nft::split(&nft::stateless(name)?)
            } else {
                Vec::new()
            },
        }),
        Good::File(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| BisectError::GoodFile(path.clone(), e.to_string()))?;
            Ok(GoodSide {
                sysctls: collect::parse_file(&text)
                    .map_err(|e| BisectError::GoodFile(path.clone(), e))?,
                routes: Vec::new(),
                nft: Vec::new(),
            })
        }
    }
}
