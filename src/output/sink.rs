//! The renderers as sinks of the capture pipeline: every way netwhy prints
//! an item is here, chosen once from `-o` (and `--pcapng`) by [`for_format`].
//! Adding an output format is one more `Sink` in this folder.
use std::io::{self, Write};

use super::finding::finding_text;
use super::pcapng::PcapngWriter;
use super::term::LiveScreen;
use super::{json_line, table, text, Format};
use crate::pipeline::{Closing, Item, Sink};
use crate::trace::{flows, render};

/// Human output. Closing lines that would spoil a pipe of events go to
/// stderr (like tcpdump's counts); the table redraws in place on a terminal.
pub struct TextSink<W: Write> {
    out: W,
    /// Redraw the table live (stdout is a terminal).
    live: bool,
    /// Table rows shown.
    top: usize,
    /// Columns to fit the table in (a terminal's width).
    width: Option<usize>,
    /// The alternate screen of the live table, from its first redraw
    /// until the final table.
    screen: Option<LiveScreen>,
    /// Per-packet blocks are not printed (the packets go to `--pcapng -`).
    packets: bool,
}

impl<W: Write> TextSink<W> {
    pub fn new(out: W) -> Self {
        TextSink {
            out,
            live: false,
            top: usize::MAX,
            width: None,
            screen: None,
            packets: true,
        }
    }

    /// Redraw the table every interval (stdout is a terminal).
    pub fn live(mut self, live: bool) -> Self {
        self.live = live;
        self
    }

    pub fn top(mut self, top: usize) -> Self {
        self.top = top;
        self
    }

    /// Fit table lines in this many columns (cut, never wrapped).
    pub fn width(mut self, width: Option<usize>) -> Self {
        self.width = width;
        self
    }

    /// Leave packets out (they are streamed elsewhere).
    pub fn without_packets(mut self) -> Self {
        self.packets = false;
        self
    }

    fn table(
        &mut self,
        groups: &[crate::event::DropGroup],
        footer: &str,
        live: bool,
    ) -> io::Result<()> {
        if live {
            let frame = table::render(groups, self.top, footer, self.width);
            if self.screen.is_none() {
                self.out.flush()?;
                self.screen = Some(LiveScreen::enter()?);
            }
            let screen = self.screen.as_mut().expect("entered above");
            return screen.draw(&mut self.out, &frame);
        }
        // Back to the shell's screen: the final table stays in its scrollback.
        self.out.flush()?;
        drop(self.screen.take());
        if groups.is_empty() {
            writeln!(self.out, "{footer}")
        } else {
            let t = table::render(groups, self.top, footer, self.width);
            self.out.write_all(t.as_bytes())
        }
    }

    /// Closing lines for stderr, after what stdout holds so far; `-q`
    /// leaves them out.
    fn after_stdout(&mut self, lines: &[String]) -> io::Result<()> {
        self.out.flush()?;
        for l in lines {
            crate::log::info_line(l);
        }
        Ok(())
    }
}

impl<W: Write> Sink for TextSink<W> {
    fn item(&mut self, item: &Item<'_>) -> io::Result<()> {
        match *item {
            Item::Drop(e) => writeln!(self.out, "{}", text::event_line(e)),
            Item::Table {
                groups,
                summary,
                live,
            } => self.table(groups, &summary.line(), live),
            Item::Packet(p) if self.packets => {
                self.out.write_all(render::packet_block(p).as_bytes())
            }
            Item::Packet(_) => Ok(()),
            Item::Flows(f) => self.out.write_all(flows::render(f).as_bytes()),
            Item::Findings { findings, heading } => {
                if let Some(h) = heading.filter(|_| !findings.is_empty()) {
                    writeln!(self.out, "{h}")?;
                }
                for (i, f) in findings.iter().enumerate() {
                    self.out.write_all(finding_text(i + 1, f).as_bytes())?;
                }
                Ok(())
            }
            Item::Closing(Closing::Drops(s)) => self.after_stdout(&[s.line()]),
            Item::Closing(Closing::Explain(s)) => {
                if s.groups == 0 {
                    writeln!(self.out, "no drops matched in {:.1}s", s.duration_s)?;
                }
                writeln!(
                    self.out,
                    "{} drops, {} hidden as known-harmless (--all shows them), {} lost, {} caused by netwhy itself (not reported)",
                    s.drops, s.hidden, s.lost, s.own
                )
            }
            Item::Closing(Closing::Trace(s)) => {
                let mut lines = vec![format!(
                    "{} packets in {:.1}s via {} ({} hooks)  matched: {}  steps: {}  lost: {}  untracked (map full): {}  stale: {}",
                    s.packets,
                    s.duration_s,
                    s.backend,
                    s.hooks.len(),
                    s.kernel.matched,
                    s.kernel.steps,
                    s.kernel.lost,
                    s.kernel.track_full,
                    s.kernel.stale
                )];
                if s.kernel.clones > 0 {
                    lines.push(format!(
                        "copies of traced packets followed: {}",
                        s.kernel.clones
                    ));
                }
                self.after_stdout(&lines)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn wants_live(&self) -> bool {
        self.live
    }
}

/// JSON Lines (docs/json.md): one object per drop, group, step, fate,
/// flow, finding, and the summary. Live redraws are not records.
pub struct JsonSink<W: Write> {
    out: W,
    packets: bool,
}

impl<W: Write> JsonSink<W> {
    pub fn new(out: W) -> Self {
        JsonSink { out, packets: true }
    }

    pub fn without_packets(mut self) -> Self {
        self.packets = false;
        self
    }
}

impl<W: Write> Sink for JsonSink<W> {
    fn item(&mut self, item: &Item<'_>) -> io::Result<()> {
        let out = &mut self.out;
        match *item {
            Item::Drop(e) => json_line(out, e),
            Item::Table { live: true, .. } => Ok(()),
            Item::Table {
                groups, summary, ..
            } => {
                for g in groups {
                    json_line(out, g)?;
                }
                json_line(out, summary)
            }
            Item::Packet(p) if self.packets => {
                for s in &p.steps {
                    json_line(out, s)?;
                }
                match &p.fate {
                    Some(f) => json_line(out, f),
                    None => Ok(()),
                }
            }
            Item::Packet(_) => Ok(()),
            Item::Flows(f) => f.iter().try_for_each(|f| json_line(out, f)),
            Item::Findings { findings, .. } => findings.iter().try_for_each(|f| json_line(out, f)),
            Item::Closing(Closing::Drops(s) | Closing::Explain(s)) => json_line(out, s),
            Item::Closing(Closing::Trace(s)) => json_line(out, s),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Every captured step of a traced packet into a pcap-ng stream, each with
/// a comment naming hook, netns, device and fate. Other items are not
/// packets and are left to the other sink.
pub struct PcapngSink<W: Write>(pub PcapngWriter<W>);

impl<W: Write> Sink for PcapngSink<W> {
    fn item(&mut self, item: &Item<'_>) -> io::Result<()> {
        let Item::Packet(p) = *item else {
            return Ok(());
        };
        for (i, s) in p.steps.iter().enumerate() {
            if s.bytes.is_empty() {
                continue;
            }
            let c = render::pcap_comment(p, i);
            self.0
                .packet(s.time_ns, &s.bytes, s.flow.len.unwrap_or(s.len), &c)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// How a command wants its items shown, beyond `-o`.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Redraw the table in place (text on a terminal).
    pub live: bool,
    /// Table rows shown.
    pub top: usize,
    /// Columns to fit the table in; `None`: full lines.
    pub width: Option<usize>,
    /// Per-packet output: off when the packets go to `-w -`, and for
    /// `run`'s text report, which is per flow.
    pub packets: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            live: false,
            top: usize::MAX,
            width: None,
            packets: true,
        }
    }
}

/// The renderer `-o` asks for, writing to `out`: the one place a format
/// is chosen.
pub fn for_format<W: Write + 'static>(fmt: Format, out: W, o: Options) -> Box<dyn Sink> {
    match fmt {
        Format::Text => {
            let t = TextSink::new(out).live(o.live).top(o.top).width(o.width);
            Box::new(if o.packets { t } else { t.without_packets() })
        }
        Format::Json => {
            let j = JsonSink::new(out);
            Box::new(if o.packets { j } else { j.without_packets() })
        }
    }
}

/// Where a `--pcapng`/`-w` argument sends the capture: `-` is stdout, as
/// with tcpdump, so `netwhy trace -w - | wireshark -k -i -` works.
pub fn is_stdout(path: &std::path::Path) -> bool {
    path.as_os_str() == "-"
}

#[cfg(test)]
#[path = "sink_tests.rs"]
mod tests;
