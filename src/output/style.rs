//! Colour: decided once per stream, asked for by every renderer.
//!
//! The decision follows the conventions other CLIs taught users (the same
//! rules anstream applies, so clap's help agrees with our output):
//! `NO_COLOR` set → never; `CLICOLOR_FORCE` set → always; otherwise only
//! on a terminal whose `TERM` is not `dumb`. Until [`init`] runs (the CLI
//! calls it first thing) every palette is plain, so library users and unit
//! tests get byte-identical uncoloured text whatever terminal runs them.
//!
//! Colour marks the words a reader scans for — drop reason names, doctor
//! severities — and nothing else; it carries no information the plain text
//! lacks.
#![forbid(unsafe_code)]

use std::fmt::{self, Display};
use std::sync::atomic::{AtomicBool, Ordering};

use anstream::stream::RawStream;
use anstream::{AutoStream, ColorChoice};
use anstyle::{AnsiColor, Style};

/// What a piece of text is, which decides how it looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A kernel drop reason name (`NO_SOCKET`).
    Reason,
    /// Doctor severities, worst first.
    Critical,
    Warning,
    Info,
}

impl Role {
    fn style(self) -> Style {
        match self {
            Role::Reason => AnsiColor::Yellow.on_default(),
            Role::Critical => AnsiColor::Red.on_default().bold(),
            Role::Warning => AnsiColor::Yellow.on_default().bold(),
            Role::Info => AnsiColor::Cyan.on_default(),
        }
    }
}

/// Colour on or off for one output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Palette {
    on: bool,
}

impl Palette {
    pub const PLAIN: Palette = Palette { on: false };
    pub const ANSI: Palette = Palette { on: true };

    /// The decision for `stream` from the environment and whether it is a
    /// terminal (see the module comment).
    pub fn detect(stream: &impl RawStream) -> Palette {
        Palette {
            on: AutoStream::choice(stream) != ColorChoice::Never,
        }
    }

    pub fn is_on(self) -> bool {
        self.on
    }

    /// `text` in the style of `role`. Width and alignment (`{:<24}`) apply
    /// to the text, so columns line up the same with colour and without.
    pub fn paint<T: Display + ?Sized>(self, role: Role, text: &T) -> Painted<'_, T> {
        Painted {
            style: if self.on { role.style() } else { Style::new() },
            text,
        }
    }
}

/// Text with its style; plain when the palette is off.
pub struct Painted<'a, T: ?Sized> {
    style: Style,
    text: &'a T,
}

impl<T: Display + ?Sized> Display for Painted<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Plain (the common case: pipes, files): the text alone, no calls
        // per event for escapes that render as nothing.
        if self.style == Style::new() {
            return self.text.fmt(f);
        }
        write!(f, "{}", self.style.render())?;
        self.text.fmt(f)?;
        write!(f, "{}", self.style.render_reset())
    }
}

static STDOUT: AtomicBool = AtomicBool::new(false);
static STDERR: AtomicBool = AtomicBool::new(false);

/// Decides for stdout and stderr from the environment. Called once by the
/// CLI before any output.
pub fn init() {
    STDOUT.store(Palette::detect(&std::io::stdout()).on, Ordering::Relaxed);
    STDERR.store(Palette::detect(&std::io::stderr()).on, Ordering::Relaxed);
}

/// The palette for text written to stdout.
pub fn stdout() -> Palette {
    Palette {
        on: STDOUT.load(Ordering::Relaxed),
    }
}

/// The palette for text written to stderr.
pub fn stderr() -> Palette {
    Palette {
        on: STDERR.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_is_the_text_alone_and_pads_the_same() {
        let p = Palette::PLAIN;
        assert_eq!(format!("{:<6}|", p.paint(Role::Reason, "AB")), "AB    |");
        let c = Palette::ANSI;
        let s = format!("{:<6}|", c.paint(Role::Reason, "AB"));
        assert!(
            s.starts_with('\x1b') && s.contains("AB    \x1b[0m|"),
            "{s:?}"
        );
    }

    #[test]
    fn roles_look_different() {
        let c = Palette::ANSI;
        let a = format!("{}", c.paint(Role::Critical, "x"));
        let b = format!("{}", c.paint(Role::Info, "x"));
        assert_ne!(a, b);
    }

    /// Nothing is coloured before the CLI decides.
    #[test]
    fn off_until_init() {
        assert!(!stdout().is_on() && !stderr().is_on());
    }
}
