//! `--state-file`: the exported counters survive a restart of the exporter
//! (an upgrade, a rescheduled pod), so Prometheus sees counters continue
//! instead of a reset that would hide the drops of the restarted run's
//! first scrape. Valid only within one boot: reason values, function names
//! and namespace inodes mean nothing after a reboot, and a reboot is a
//! real reset anyway.
use std::fs;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::series::Saved;
use super::{ExportError, GroupLabels};

#[derive(Serialize, Deserialize)]
struct File {
    v: u32,
    boot_id: String,
    series: Vec<Series>,
    other: Vec<Other>,
}

#[derive(Serialize, Deserialize)]
struct Series {
    reason: u32,
    location: String,
    netns: u32,
    dev: String,
    drops: u64,
    bytes: u64,
}

#[derive(Serialize, Deserialize)]
struct Other {
    reason: u32,
    drops: u64,
    bytes: u64,
}

/// What an earlier run left.
#[derive(Default)]
pub struct Restored {
    pub series: Vec<Saved<GroupLabels>>,
    pub folded: Vec<(u32, u64, u64)>,
}

fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn err(path: &Path, detail: impl ToString) -> ExportError {
    ExportError::State {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

/// Reads the file; none yet, or one from another boot, restores nothing.
pub fn load(path: &Path) -> Result<Restored, ExportError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Restored::default()),
        Err(e) => return Err(err(path, e)),
    };
    let f: File = serde_json::from_str(&text).map_err(|e| err(path, e))?;
    if f.v != 1 {
        return Err(err(path, format!("unknown version {}", f.v)));
    }
    if f.boot_id != boot_id() {
        crate::log::info(format_args!(
            "state file {} is from another boot: counters start from zero",
            path.display()
        ));
        return Ok(Restored::default());
    }
    Ok(Restored {
        series: f
            .series
            .into_iter()
            .map(|s| Saved {
                key: GroupLabels {
                    reason: s.reason,
                    location: s.location,
                    netns: s.netns,
                    dev: s.dev,
                },
                count: s.drops,
                bytes: s.bytes,
            })
            .collect(),
        folded: f
            .other
            .into_iter()
            .map(|o| (o.reason, o.drops, o.bytes))
            .collect(),
    })
}

/// Writes the file atomically (a temporary beside it, then rename).
pub fn save(
    path: &Path,
    series: &[Saved<GroupLabels>],
    folded: &[(u32, u64, u64)],
) -> Result<(), ExportError> {
    let f = File {
        v: 1,
        boot_id: boot_id(),
        series: series
            .iter()
            .map(|s| Series {
                reason: s.key.reason,
                location: s.key.location.clone(),
                netns: s.key.netns,
                dev: s.key.dev.clone(),
                drops: s.count,
                bytes: s.bytes,
            })
            .collect(),
        other: folded
            .iter()
            .map(|(r, c, b)| Other {
                reason: *r,
                drops: *c,
                bytes: *b,
            })
            .collect(),
    };
    let text = serde_json::to_string(&f).map_err(|e| err(path, e))?;
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let mut file = fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        err(path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_series_come_back_in_the_same_boot() {
        let dir = std::env::temp_dir().join(format!("nw-state-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.json");
        let key = GroupLabels {
            reason: 2,
            location: "__udp4_lib_rcv".into(),
            netns: 4026531840,
            dev: "lo".into(),
        };
        let saved = vec![Saved {
            key: key.clone(),
            count: 5,
            bytes: 420,
        }];
        save(&path, &saved, &[(2, 1, 84)]).unwrap();
        let r = load(&path).unwrap();
        assert_eq!(r.series, saved);
        assert_eq!(r.folded, vec![(2, 1, 84)]);
        // Another boot: nothing restored.
        let text = fs::read_to_string(&path)
            .unwrap()
            .replace(&boot_id(), "other-boot");
        fs::write(&path, text).unwrap();
        assert!(load(&path).unwrap().series.is_empty());
        // Garbage: a clear error naming the file.
        fs::write(&path, "{not json").unwrap();
        let e = load(&path).err().unwrap().to_string();
        assert!(e.contains("s.json"), "{e}");
        assert!(load(&dir.join("absent.json")).unwrap().series.is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }
}
