//! `netwhy vmcore ...`: the command-line face of the crate. The main netwhy
//! binary embeds [`VmcoreCmd`] as a subcommand; `netwhy-vmcore` runs it alone.

use crate::printk::LogKind;
use crate::record::Record;
use crate::render::{self, TextOpts};
use crate::{Container, Dump};
use anyhow::{bail, Context, Result};
use std::io::Write;

const DEFAULT_DUMP: &str = "/proc/vmcore";

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Color {
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(clap::Subcommand, Debug)]
pub enum VmcoreCmd {
    /// Print the kernel log stored in a crash dump, like dmesg.
    Dmesg {
        /// ELF or kdump-compressed dump (default: /proc/vmcore when it exists).
        file: Option<String>,
        /// Print the syslog priority prefix `<N>` (dmesg -r).
        #[arg(short, long)]
        raw: bool,
        /// One JSON object per record: seq, ts_nsec, level, facility, caller, text, dict.
        #[arg(short, long, conflicts_with_all = ["raw", "decode"])]
        json: bool,
        /// Do not print timestamps (dmesg -t).
        #[arg(short = 't', long)]
        notime: bool,
        /// Wall-clock timestamps, estimated from the dump's CRASHTIME (dmesg -T).
        #[arg(short = 'T', long)]
        ctime: bool,
        /// Show facility and level names (dmesg -x).
        #[arg(short = 'x', long)]
        decode: bool,
        /// Only these levels, comma-separated (emerg,alert,crit,err,warn,notice,info,debug).
        #[arg(short, long, value_delimiter = ',')]
        level: Vec<String>,
        /// Only records logged at or after this many seconds since boot.
        #[arg(long, value_name = "SECONDS")]
        since_boot: Option<f64>,
        /// Only the last N records.
        #[arg(long, value_name = "N")]
        tail: Option<usize>,
        /// Omit the `#` header (release, crash time, panic line).
        #[arg(long)]
        no_header: bool,
        /// Highlight the panic line (auto: on a terminal, unless NO_COLOR or
        /// TERM=dumb; CLICOLOR_FORCE forces it).
        #[arg(long, value_enum, default_value_t = Color::Auto)]
        color: Color,
    },
    /// Describe a dump: VMCOREINFO, memory map, and whether its log can be read.
    Info {
        /// ELF or kdump-compressed dump (default: /proc/vmcore when it exists).
        file: Option<String>,
        /// Machine-readable output.
        #[arg(short, long)]
        json: bool,
    },
}

fn dump_path(file: Option<String>) -> Result<String> {
    match file {
        Some(f) => Ok(f),
        None if std::path::Path::new(DEFAULT_DUMP).exists() => Ok(DEFAULT_DUMP.into()),
        None => {
            bail!("no dump given and {DEFAULT_DUMP} does not exist (are we in a kdump kernel?)")
        }
    }
}

/// Runs one subcommand. A closed stdout (`| head`) is success, not an error.
/// An error and its causes as one line, each cause once: library errors
/// often already name their source (`{path}: {source}`), and printing the
/// chain would repeat it.
pub fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if !line.ends_with(&c) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&c);
        }
    }
    line
}

pub fn run(cmd: VmcoreCmd) -> Result<()> {
    let r = match cmd {
        VmcoreCmd::Dmesg {
            file,
            raw,
            json,
            notime,
            ctime,
            decode,
            level,
            since_boot,
            tail,
            no_header,
            color,
        } => {
            let opts = DmesgOpts {
                raw,
                json,
                notime,
                ctime,
                decode,
                level,
                since_boot,
                tail,
                no_header,
                color,
            };
            dmesg(&dump_path(file)?, &opts)
        }
        VmcoreCmd::Info { file, json } => info(&dump_path(file)?, json),
    };
    match r {
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// `--color auto`: the conventions netwhy's other output follows (anstream's
/// rules): `NO_COLOR` → off, `CLICOLOR_FORCE` → on, else on a terminal
/// whose `TERM` is not `dumb`.
fn auto_color(stdout: &std::io::Stdout) -> bool {
    anstream::AutoStream::choice(stdout) != anstream::ColorChoice::Never
}

struct DmesgOpts {
    raw: bool,
    json: bool,
    notime: bool,
    ctime: bool,
    decode: bool,
    level: Vec<String>,
    since_boot: Option<f64>,
    tail: Option<usize>,
    no_header: bool,
    color: Color,
}

fn level_filter(names: &[String]) -> Result<Option<[bool; 8]>> {
    if names.is_empty() {
        return Ok(None);
    }
    let mut keep = [false; 8];
    for n in names {
        let i = render::LEVELS
            .iter()
            .position(|l| {
                l.eq_ignore_ascii_case(n.trim()) || (n.trim() == "warning" && *l == "warn")
            })
            .with_context(|| {
                format!(
                    "unknown level {n:?} (expected one of {})",
                    render::LEVELS.join(",")
                )
            })?;
        keep[i] = true;
    }
    Ok(Some(keep))
}

/// What the header and `--tail` need to know before the first record is
/// printed: a first pass over the log that keeps no records.
#[derive(Default)]
struct Survey {
    total: usize,
    /// Records passing the level / since-boot filters.
    kept: usize,
    last_ts: u64,
    /// The panic message itself (a record starting "Kernel panic"), else the
    /// first record mentioning it; not the `---[ end Kernel panic` trailer.
    panic_start: Option<(u64, Vec<u8>)>,
    panic_any: Option<(u64, Vec<u8>)>,
    warnings: Vec<String>,
}

/// Records are streamed from the dump to the output: with no header and no
/// `--tail` in one pass; otherwise a first pass surveys the log (counts,
/// last timestamp, panic line) and a second prints. Either way no list of
/// records is built, so memory stays flat and no record is allocated.
fn dmesg(path: &str, o: &DmesgOpts) -> Result<()> {
    let keep = level_filter(&o.level)?;
    let wanted = |r: &Record| {
        keep.is_none_or(|k| k[(r.level & 7) as usize])
            && o.since_boot.is_none_or(|s| r.ts_nsec as f64 / 1e9 >= s)
    };
    let dump = Dump::open(path)?;
    let vi = dump.vmcoreinfo()?;
    let kind = dump.log_kind()?;
    let text_needs_survey = !o.json && (!o.no_header || o.ctime);
    let survey = if !text_needs_survey && o.tail.is_none() {
        None
    } else {
        let mut s = Survey::default();
        s.warnings = dump.walk_log(&mut |r| {
            s.total += 1;
            s.kept += usize::from(wanted(r));
            s.last_ts = r.ts_nsec;
            if s.panic_start.is_none() && r.text.starts_with(b"Kernel panic") {
                s.panic_start = Some((r.ts_nsec, r.text.clone()));
            }
            if s.panic_any.is_none() && render::is_panic_line(&r.text) {
                s.panic_any = Some((r.ts_nsec, r.text.clone()));
            }
        })?;
        for w in &s.warnings {
            eprintln!("netwhy vmcore: warning: {w}");
        }
        Some(s)
    };
    // Records to pass over before printing (--tail N keeps the last N).
    let skip = match (&survey, o.tail) {
        (Some(s), Some(n)) => s.kept.saturating_sub(n),
        _ => 0,
    };
    let stdout = std::io::stdout();
    let color = match o.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => auto_color(&stdout),
    };
    // Small: the text writer hands over chunks larger than this, which
    // BufWriter passes straight through (no second copy, fewer fresh pages).
    let mut out = std::io::BufWriter::with_capacity(8 << 10, stdout.lock());
    let last_ts = survey.as_ref().map_or(0, |s| s.last_ts);
    if let (Some(s), false, false) = (&survey, o.no_header, o.json) {
        writeln!(
            out,
            "# dump: {path} ({}, {} bytes)",
            dump.format_name(),
            dump.file_len
        )?;
        writeln!(out, "# kernel: {}", vi.osrelease().unwrap_or("unknown"))?;
        match vi.crash_time() {
            Some(t) => writeln!(
                out,
                "# crashed: {} UTC (CRASHTIME {t}, last record {} after boot)",
                render::civil(t as f64),
                render::timestamp(last_ts)
            )?,
            None => writeln!(
                out,
                "# crashed: time not recorded (CRASHTIME is only written when a kdump kernel is loaded); last record {} after boot",
                render::timestamp(last_ts)
            )?,
        }
        writeln!(out, "# log: {}, {} records", kind.describe(), s.total)?;
        if let Some((ts, text)) = s.panic_start.as_ref().or(s.panic_any.as_ref()) {
            let (on, off) = if color {
                ("\x1b[1;31m", "\x1b[0m")
            } else {
                ("", "")
            };
            writeln!(
                out,
                "# panic: {on}{} {}{off}",
                render::timestamp(*ts),
                render::escape(text)
            )?;
        }
    }
    let boot_epoch = if o.ctime && !o.json {
        let t = vi
            .crash_time()
            .context("--ctime needs CRASHTIME in VMCOREINFO")?;
        Some(t as f64 - last_ts as f64 / 1e9)
    } else {
        None
    };
    let topts = TextOpts {
        raw: o.raw,
        notime: o.notime,
        decode: o.decode,
        boot_epoch,
        join_cont: kind == LogKind::Structured,
        color,
    };
    // Output errors (a closed pipe) stop the printing; the walk itself
    // cannot be interrupted, so the first one is kept and returned.
    let mut failed: Option<std::io::Error> = None;
    let mut seen = 0usize;
    let warnings = if o.json {
        dump.walk_log(&mut |r| {
            if failed.is_some() || !wanted(r) {
                return;
            }
            seen += 1;
            if seen > skip {
                if let Err(e) = writeln!(out, "{}", render::json(r)) {
                    failed = Some(e);
                }
            }
        })?
    } else {
        let mut w = render::TextWriter::new(&mut out, &topts);
        let warnings = dump.walk_log(&mut |r| {
            if failed.is_some() || !wanted(r) {
                return;
            }
            seen += 1;
            if seen > skip {
                if let Err(e) = w.push(r) {
                    failed = Some(e);
                }
            }
        })?;
        if failed.is_none() {
            w.finish()?;
        }
        warnings
    };
    if let Some(e) = failed {
        return Err(e.into());
    }
    out.flush()?;
    if survey.is_none() {
        for w in &warnings {
            eprintln!("netwhy vmcore: warning: {w}");
        }
    }
    Ok(())
}

fn info(path: &str, json: bool) -> Result<()> {
    let dump = Dump::open(path)?;
    let log = dump
        .vmcoreinfo()
        .ok()
        .map(|_| (dump.log_kind(), dump.read_log()));
    let log_state = match &log {
        None => "no VMCOREINFO".to_string(),
        Some((Err(e), _)) | Some((Ok(_), Err(e))) => format!("unreadable: {e}"),
        Some((Ok(k), Ok(l))) => format!("readable: {}, {} records", k.describe(), l.records.len()),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if json {
        let mut v = serde_json::json!({
            "path": path,
            "size": dump.file_len,
            "format": dump.format_name(),
            "machine": dump.machine,
            "log": log_state,
        });
        if let Ok(vi) = dump.vmcoreinfo() {
            v["vmcoreinfo"] = vi
                .entries
                .iter()
                .map(|(k, val)| serde_json::json!([k, val]))
                .collect::<Vec<_>>()
                .into();
        }
        if let Container::Elf(core) = &dump.container {
            v["loads"] = core
                .loads
                .iter()
                .map(|l| serde_json::json!({"offset": l.offset, "vaddr": l.vaddr, "paddr": l.paddr, "filesz": l.filesz, "memsz": l.memsz}))
                .collect::<Vec<_>>()
                .into();
        }
        writeln!(out, "{v}")?;
        out.flush()?;
        return Ok(());
    }
    writeln!(out, "dump:      {path}")?;
    writeln!(out, "size:      {} bytes", dump.file_len)?;
    writeln!(out, "format:    {}", dump.format_name())?;
    let machine = match dump.machine {
        crate::elf::EM_X86_64 => "x86_64".to_string(),
        crate::elf::EM_AARCH64 => "aarch64".to_string(),
        m => format!("e_machine {m}"),
    };
    writeln!(out, "machine:   {machine}")?;
    writeln!(out, "log:       {log_state}")?;
    match &dump.container {
        Container::Elf(core) => {
            writeln!(out, "phdrs at:  {:#x}", core.phoff)?;
            writeln!(out, "PT_LOAD:   {} segments", core.loads.len())?;
            writeln!(
                out,
                "  {:>18} {:>18} {:>12} {:>12} {:>12}",
                "paddr", "vaddr", "offset", "filesz", "memsz"
            )?;
            for l in &core.loads {
                writeln!(
                    out,
                    "  {:#18x} {:#18x} {:#12x} {:#12x} {:#12x}",
                    l.paddr, l.vaddr, l.offset, l.filesz, l.memsz
                )?;
            }
        }
        Container::Kdump(h) => {
            writeln!(
                out,
                "header:    version {}, block size {}, max_mapnr {:#x}, phys_base {:#x}",
                h.version, h.block_size, h.max_mapnr, h.phys_base
            )?;
            if !h.release.is_empty() {
                writeln!(out, "utsname:   {} {}", h.release, h.machine)?;
            }
        }
    }
    match dump.vmcoreinfo() {
        Ok(vi) => {
            writeln!(out, "VMCOREINFO ({} entries):", vi.entries.len())?;
            if let Some(k) = vi.kernel_offset() {
                writeln!(out, "  KASLR offset: {k:#x}")?;
            }
            if let Ok(a) = dump.arch() {
                writeln!(out, "  translation: {a:?}")?;
            }
            for (k, val) in &vi.entries {
                writeln!(out, "  {k}={val}")?;
            }
        }
        Err(e) => writeln!(out, "VMCOREINFO: {e}")?,
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod error_line_tests {
    #[test]
    fn causes_already_in_the_message_are_not_repeated() {
        let io = std::io::Error::from_raw_os_error(2);
        let e = anyhow::Error::new(crate::error::Error::Open {
            path: "/x".into(),
            source: io,
        });
        assert_eq!(
            super::error_line(&e),
            "/x: No such file or directory (os error 2)"
        );
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(super::error_line(&e), "outer: inner");
    }
}
