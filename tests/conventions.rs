//! What users expect of a network CLI: completions and man pages, colour
//! that follows NO_COLOR / CLICOLOR_FORCE / TERM=dumb and pipes,
//! `reasons -o json`, and `-q` / `-v` on stderr.
mod common;

use std::process::{Command, Output, Stdio};

use common::*;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// True when `tool` runs. In CI a missing tool is a failure (scripts/
/// apt-packages installs it); elsewhere the check is skipped with a note.
fn have(tool: &str, test: &str) -> bool {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(!in_ci(), "{test}: {tool} missing (scripts/apt-packages)");
        eprintln!("skipping part of {test}: no {tool}");
    }
    ok
}

/// netwhy with a colour-neutral environment plus `env`.
fn netwhy_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(bin());
    c.args(args);
    for v in ["NO_COLOR", "CLICOLOR_FORCE", "CLICOLOR", "TERM", "CI"] {
        c.env_remove(v);
    }
    c.envs(env.iter().copied());
    c.output().expect("run netwhy")
}

fn has_esc(b: &[u8]) -> bool {
    b.contains(&0x1b)
}

#[test]
fn completions_generate_for_each_shell_and_parse() {
    let mut scripts = Vec::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr_of(&out));
        let text = String::from_utf8(out.stdout).unwrap();
        // Subcommands and their options are in there, hidden ones are not.
        for want in [
            "drops", "explain", "doctor", "reasons", "duration", "verbose",
        ] {
            assert!(text.contains(want), "{shell}: no {want:?}");
        }
        assert!(!text.contains("skbfuncs"), "{shell}: hidden command listed");
        scripts.push((shell, text));
    }
    let dir = tempdir("completions");
    for (shell, text) in &scripts {
        let path = dir.join(format!("netwhy.{shell}"));
        std::fs::write(&path, text).unwrap();
        let check: &[&str] = match *shell {
            "bash" => &["bash", "-n"],
            "zsh" => &["zsh", "-n"],
            _ => &["fish", "--no-execute"],
        };
        // bash is always there; zsh and fish come from scripts/apt-packages.
        if *shell != "bash" && !have(check[0], "completions") {
            continue;
        }
        let out = Command::new(check[0])
            .args(&check[1..])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{shell} rejects its completions: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // bash: the function completes subcommands when sourced.
    let probe = format!(
        "source {}; COMP_WORDS=(netwhy re); COMP_CWORD=1; _netwhy netwhy re netwhy; echo \"${{COMPREPLY[@]}}\"",
        dir.join("netwhy.bash").display()
    );
    let out = Command::new("bash").args(["-c", &probe]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "reasons",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!run(&["completions", "tcsh"]).status.success());
}

#[test]
fn man_pages_generate_and_render_without_warnings() {
    let dir = tempdir("man");
    let out = run(&["man", "--dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let listed = String::from_utf8(out.stdout).unwrap();
    let mut pages: Vec<String> = std::fs::read_dir(&*dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    pages.sort();
    for want in [
        "netwhy.1",
        "netwhy-drops.1",
        "netwhy-explain.1",
        "netwhy-doctor.1",
        "netwhy-reasons.1",
        "netwhy-lab-run.1",
        "netwhy-vmcore-dmesg.1",
    ] {
        assert!(pages.iter().any(|p| p == want), "no {want} in {pages:?}");
    }
    assert!(!pages.iter().any(|p| p.contains("skbfuncs")), "{pages:?}");
    assert_eq!(listed.lines().count(), pages.len(), "{listed}");
    let drops = std::fs::read_to_string(dir.join("netwhy-drops.1")).unwrap();
    assert!(drops.contains("\\-\\-duration"), "{drops}");
    if have("groff", "man pages") {
        for p in &pages {
            let out = Command::new("groff")
                .args(["-man", "-Tutf8", "-ww", "-z"])
                .arg(dir.join(p))
                .output()
                .unwrap();
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "groff warns about {p}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    if have("man", "man pages") {
        let out = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(dir.join("netwhy-reasons.1"))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("netwhy-reasons"), "{text}");
        assert!(text.contains("--output"), "{text}");
    }
}

#[test]
fn colour_follows_the_environment() {
    // Piped (as here): plain unless forced.
    let plain = netwhy_env(&["reasons"], &[]);
    assert!(plain.status.success(), "{}", stderr_of(&plain));
    assert!(!has_esc(&plain.stdout));
    let forced = netwhy_env(&["reasons"], &[("CLICOLOR_FORCE", "1")]);
    assert!(has_esc(&forced.stdout), "CLICOLOR_FORCE=1 gave no colour");
    // Taking the escapes out gives the plain text back.
    assert_eq!(strip_ansi(&forced.stdout), plain.stdout);
    let both = netwhy_env(&["reasons"], &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]);
    assert!(!has_esc(&both.stdout), "NO_COLOR must win");
    let explain = netwhy_env(&["reasons", "NO_SOCKET"], &[("CLICOLOR_FORCE", "1")]);
    assert!(has_esc(&explain.stdout));
    // JSON is never coloured.
    let json = netwhy_env(&["reasons", "-o", "json"], &[("CLICOLOR_FORCE", "1")]);
    assert!(!has_esc(&json.stdout));

    // On a terminal: colour, except for TERM=dumb and NO_COLOR.
    if have("script", "colour") {
        let tty = |env: &[(&str, &str)]| {
            let o = netwhy_env_script(&format!("{} reasons", bin()), env);
            has_esc(&o)
        };
        assert!(
            tty(&[("TERM", "xterm-256color")]),
            "no colour on a terminal"
        );
        assert!(!tty(&[("TERM", "dumb")]), "colour with TERM=dumb");
        assert!(
            !tty(&[("TERM", "xterm"), ("NO_COLOR", "1")]),
            "colour with NO_COLOR"
        );
    }

    // doctor: severities coloured when there are findings, never with NO_COLOR.
    let d = netwhy_env(&["doctor", "--window", "0"], &[("CLICOLOR_FORCE", "1")]);
    let text = String::from_utf8_lossy(&d.stdout);
    assert!(text.contains("finding(s) in"), "{text}{}", stderr_of(&d));
    let found = ["critical]", "warning]", "info]"].iter().any(|s| {
        strip_ansi(&d.stdout)
            .windows(s.len())
            .any(|w| w == s.as_bytes())
    });
    assert_eq!(has_esc(&d.stdout), found, "{text}");
    let d = netwhy_env(&["doctor", "--window", "0"], &[("NO_COLOR", "1")]);
    assert!(!has_esc(&d.stdout));
}

/// The panic line of a crash dump's header, by the same rules.
#[test]
fn vmcore_panic_line_colour() {
    let dir = tempdir("vmcore");
    let dump = dir.join("trimmed.elf");
    let gz = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crates/vmcore/tests/data/trimmed.elf.gz"
    );
    let out = Command::new("zcat").arg(gz).output().expect("zcat");
    assert!(out.status.success());
    std::fs::write(&dump, out.stdout).unwrap();
    let dmesg = |env: &[(&str, &str)]| {
        let o = netwhy_env(&["vmcore", "dmesg", dump.to_str().unwrap()], env);
        assert!(o.status.success(), "{}", stderr_of(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    let panic_line = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("# panic: "))
            .map(str::to_owned)
    };
    let plain = dmesg(&[]);
    assert!(!plain.contains('\x1b'));
    let forced = dmesg(&[("CLICOLOR_FORCE", "1")]);
    let line = panic_line(&forced).expect("a panic line");
    assert!(
        line.contains("\x1b[1;31m") && line.contains("Kernel panic"),
        "{line:?}"
    );
    assert_eq!(strip_ansi(forced.as_bytes()), plain.as_bytes());
    let off = dmesg(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]);
    assert!(!off.contains('\x1b'));
}

/// Runs `cmd` under a pseudo-terminal (util-linux `script`) and returns
/// what it printed.
fn netwhy_env_script(cmd: &str, env: &[(&str, &str)]) -> Vec<u8> {
    let mut c = Command::new("script");
    c.args(["-q", "-e", "-c", cmd, "/dev/null"]);
    for v in ["NO_COLOR", "CLICOLOR_FORCE", "CLICOLOR", "TERM", "CI"] {
        c.env_remove(v);
    }
    c.envs(env.iter().copied());
    let out = c.stdin(Stdio::null()).output().expect("script");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn strip_ansi(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut esc = false;
    for &c in b {
        match (esc, c) {
            (false, 0x1b) => esc = true,
            (true, b'm') => esc = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}

#[test]
fn reasons_json_lists_the_kernels_names() {
    let out = run(&["reasons", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v = json_lines(&String::from_utf8(out.stdout).unwrap());
    let reasons = of_type(&v, "kernel_reason");
    let summary = of_type(&v, "reasons_summary");
    assert_eq!(summary.len(), 1);
    assert_eq!(v.last().unwrap()["type"], "reasons_summary");
    assert_eq!(summary[0]["reasons"].as_u64(), Some(reasons.len() as u64));
    assert!(v.iter().all(|o| o["v"] == 1));
    let json: Vec<(u64, String)> = reasons
        .iter()
        .map(|r| {
            (
                r["value"].as_u64().unwrap(),
                r["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(json.iter().any(|(_, n)| n == "NO_SOCKET"), "{json:?}");
    // The text listing says the same.
    let text = String::from_utf8(run(&["reasons"]).stdout).unwrap();
    let listed: Vec<(u64, String)> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (v, n) = l.trim().split_once("  ").unwrap();
            (v.parse().unwrap(), n.to_string())
        })
        .collect();
    assert_eq!(json, listed);
    let source = summary[0]["source"].as_str().unwrap();
    assert!(
        text.starts_with(&format!("# source: {}", capitalised(source))),
        "{text}"
    );
    // And so does the kernel itself: every reason its kfree_skb tracepoint
    // names (readable by root) is listed with the same value.
    let format = "/sys/kernel/tracing/events/skb/kfree_skb/format";
    match std::fs::read_to_string(format) {
        Ok(f) => {
            let kernel = tracefs_reasons(&f);
            assert!(!kernel.is_empty(), "no reasons parsed from {format}");
            for r in &kernel {
                assert!(json.contains(r), "{r:?} missing from reasons -o json");
            }
        }
        Err(e) => {
            assert!(!in_ci(), "CI runs as root: {format}: {e}");
            eprintln!("skipping the tracefs comparison: {format}: {e}");
        }
    }
    // One reason explained.
    let out = run(&["reasons", "NO_SOCKET", "--at", "tcp_v4_rcv", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let v = json_lines(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(v.len(), 1);
    let x = &v[0];
    assert_eq!(x["type"], "reason_explanation");
    assert_eq!(x["reason"], "NO_SOCKET");
    assert_eq!(x["id"], "no-socket");
    assert_eq!(x["function"], "tcp_v4_rcv");
    assert!(!x["fixes"].as_array().unwrap().is_empty());
    assert_eq!(x["known"], true);
    let out = run(&["reasons", "nat-tuple-mismatchh", "-o", "json"]);
    assert!(!out.status.success() && out.stdout.is_empty());
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// `{ 2, "NOT_SPECIFIED" }` pairs of the tracepoint's print format.
fn tracefs_reasons(format: &str) -> Vec<(u64, String)> {
    let mut v = Vec::new();
    for part in format.split("{ ").skip(1) {
        let Some((num, rest)) = part.split_once(", \"") else {
            continue;
        };
        let (Ok(n), Some((name, _))) = (num.trim().parse(), rest.split_once('"')) else {
            continue;
        };
        // MAX closes the enum; it is no reason.
        if name != "MAX"
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            v.push((n, name.to_string()));
        }
    }
    v
}

#[test]
fn verbose_adds_debug_lines_and_quiet_keeps_errors() {
    let normal = run(&["reasons"]);
    assert!(!stderr_of(&normal).contains("netwhy: debug:"));
    let v = run(&["-v", "reasons"]);
    assert!(v.status.success());
    assert!(
        stderr_of(&v).contains("netwhy: debug: "),
        "{}",
        stderr_of(&v)
    );
    // After the subcommand too (global flags), and the results unchanged.
    let v2 = run(&["reasons", "--verbose"]);
    assert!(stderr_of(&v2).contains("netwhy: debug: "));
    assert_eq!(v2.stdout, normal.stdout);
    // Errors print whatever -q says.
    let e = run(&["-q", "reasons", "nat-tuple-mismatchh"]);
    assert!(!e.status.success());
    assert!(
        stderr_of(&e).starts_with("netwhy: error: no diagnosis named"),
        "{}",
        stderr_of(&e)
    );
}

/// A capture: `-q` drops the "attached" notice and the summary on stderr,
/// `-v` adds libbpf's own log (loading the object, its maps and programs).
#[test]
fn quiet_and_verbose_on_a_capture() {
    if !root_or_skip("quiet_and_verbose_on_a_capture") {
        return;
    }
    let normal = run(&["drops", "--events", "--duration", "0.5"]);
    assert!(normal.status.success(), "{}", stderr_of(&normal));
    let err = stderr_of(&normal);
    assert!(err.contains("netwhy: attached to "), "{err}");
    assert!(err.contains(" drops in "), "{err}");
    assert!(!err.contains("libbpf: "), "{err}");

    let quiet = run(&["-q", "drops", "--events", "--duration", "0.5"]);
    assert!(quiet.status.success(), "{}", stderr_of(&quiet));
    let err = stderr_of(&quiet);
    assert!(!err.contains("attached to"), "{err}");
    assert!(!err.contains(" drops in "), "{err}");

    let verbose = run(&["-v", "drops", "--duration", "0.5"]);
    assert!(verbose.status.success(), "{}", stderr_of(&verbose));
    let err = stderr_of(&verbose);
    assert!(err.contains("netwhy: attached to "), "{err}");
    let libbpf = err.lines().filter(|l| l.starts_with("libbpf: ")).count();
    assert!(libbpf >= 3, "{libbpf} libbpf lines: {err}");
}

/// A directory removed when the test ends, passed or not.
struct TempDir(std::path::PathBuf);

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir(tag: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!("netwhy-conv-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}
