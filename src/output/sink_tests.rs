//! The capture loop and the sinks on synthetic sources: stop conditions,
//! the last poll, a reader that went away, live and final tables.
use std::io::{self, Write};
use std::time::Instant;

use super::{JsonSink, TextSink};
use crate::pipeline::*;
use crate::probe::drop::Counters;

/// Emits a table item every poll; done after `done_at` polls (0: never).
struct Ticks {
    polls: u32,
    done_at: u32,
    last_finishing: bool,
    summary: Summary,
}

impl Ticks {
    fn new(done_at: u32) -> Self {
        Ticks {
            polls: 0,
            done_at,
            last_finishing: false,
            summary: Summary::new("tp_btf", 1.0, &Counters::default(), 0, 0),
        }
    }
}

impl Source for Ticks {
    fn poll(&mut self, finishing: bool, out: &mut dyn Sink) -> Result<Flow, PipelineError> {
        self.polls += 1;
        self.last_finishing = finishing;
        out.item(&Item::Table {
            groups: &[],
            summary: &self.summary,
            live: false,
        })?;
        Ok(if self.polls == self.done_at {
            Flow::Done
        } else {
            Flow::More
        })
    }
}

/// A writer whose reader went away after `ok` writes.
struct Pipe {
    ok: usize,
    kind: io::ErrorKind,
}

impl Write for Pipe {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if self.ok == 0 {
            return Err(io::Error::from(self.kind));
        }
        self.ok -= 1;
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn never() -> Until<'static> {
    Until::signalled().after(Instant::now(), Some(3600.0))
}

#[test]
fn a_source_that_has_enough_ends_the_loop() {
    let mut src = Ticks::new(3);
    let mut out = TextSink::new(Vec::new());
    let end = drive(&mut src, &mut out, &mut never()).unwrap();
    assert_eq!(end, Ended::Finished);
    assert_eq!(src.polls, 3);
    assert!(!src.last_finishing);
}

#[test]
fn a_due_condition_gets_one_last_draining_poll() {
    let mut src = Ticks::new(0);
    let mut n = 0;
    let mut until = never().or(|| {
        n += 1;
        n >= 4
    });
    let end = drive(&mut src, &mut NullSink, &mut until).unwrap();
    assert_eq!(end, Ended::Finished);
    assert_eq!(src.polls, 4, "three ordinary polls and the last one");
    assert!(src.last_finishing);
}

#[test]
fn a_deadline_in_the_past_polls_once() {
    let mut src = Ticks::new(0);
    let mut until = Until::signalled().after(Instant::now(), Some(-1.0));
    drive(&mut src, &mut NullSink, &mut until).unwrap();
    assert_eq!(src.polls, 1);
    assert!(src.last_finishing);
}

#[test]
fn a_reader_gone_is_a_quiet_end_and_other_errors_are_not() {
    let mut src = Ticks::new(0);
    let mut out = TextSink::new(Pipe {
        ok: 2,
        kind: io::ErrorKind::BrokenPipe,
    });
    assert_eq!(
        drive(&mut src, &mut out, &mut never()).unwrap(),
        Ended::ReaderGone
    );
    let mut out = TextSink::new(Pipe {
        ok: 2,
        kind: io::ErrorKind::StorageFull,
    });
    let err = drive(&mut Ticks::new(0), &mut out, &mut never()).unwrap_err();
    assert!(err.to_string().starts_with("writing output"), "{err}");

    let s = Summary::new("tp_btf", 1.0, &Counters::default(), 0, 0);
    let mut out = TextSink::new(Pipe {
        ok: 0,
        kind: io::ErrorKind::BrokenPipe,
    });
    let items = [Item::Closing(Closing::Explain(&s))];
    assert_eq!(finish(&mut out, &items).unwrap(), Ended::ReaderGone);
}

#[test]
fn the_final_table_alone_and_json_ignores_redraws() {
    let s = Summary::new("tp_btf", 2.0, &Counters::default(), 0, 0);
    let live = Item::Table {
        groups: &[],
        summary: &s,
        live: true,
    };
    let last = Item::Table {
        groups: &[],
        summary: &s,
        live: false,
    };
    // (A live redraw enters the terminal's alternate screen: not here.)
    assert!(TextSink::new(Vec::new()).live(true).wants_live());
    let mut buf = Vec::new();
    let mut plain = TextSink::new(&mut buf);
    plain.item(&last).unwrap();
    assert_eq!(
        String::from_utf8(buf).unwrap(),
        format!("{}\n", s.line()),
        "no groups: the summary line alone"
    );

    let mut json = Vec::new();
    {
        let mut j = JsonSink::new(&mut json);
        assert!(!j.wants_live());
        j.item(&live).unwrap();
        j.item(&last).unwrap();
    }
    let lines: Vec<&str> = std::str::from_utf8(&json).unwrap().lines().collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["type"], "summary");
}

#[test]
fn explain_says_when_nothing_matched_and_findings_headings_need_findings() {
    let s = Summary::new("tracepoint", 5.01, &Counters::default(), 0, 0);
    let mut buf = Vec::new();
    {
        let mut t = TextSink::new(&mut buf);
        t.item(&Item::Findings {
            findings: &[],
            heading: Some("why:"),
        })
        .unwrap();
        t.item(&Item::Closing(Closing::Explain(&s))).unwrap();
    }
    let text = String::from_utf8(buf).unwrap();
    assert!(!text.contains("why:"), "{text}");
    assert!(text.starts_with("no drops matched in 5.0s\n"), "{text}");
    assert!(text.contains("0 drops, 0 hidden"), "{text}");
}
