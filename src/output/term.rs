//! The terminal under the live table: its width, and a screen that is
//! given back as it was found.
//!
//! The live `drops` table redraws in the alternate screen (as `top` and
//! `less` do) with the cursor hidden; [`LiveScreen`] undoes both in `Drop`,
//! so the normal exit after Ctrl-C (the first signal only asks the loop to
//! stop), an error returned with `?` and a panic all leave the shell's
//! screen and cursor intact, and the final table lands in the scrollback.
#![forbid(unsafe_code)]

use std::io::{self, IsTerminal, Write};

use crossterm::{cursor, terminal};

/// Columns of the terminal on stdout; `None` when stdout is not a
/// terminal (a pipe or a file gets full lines, as before).
pub fn width() -> Option<usize> {
    if !io::stdout().is_terminal() {
        return None;
    }
    terminal::size()
        .ok()
        .map(|(cols, _)| usize::from(cols))
        .filter(|&c| c > 0)
}

/// What [`LiveScreen`]'s `Drop` writes (show the cursor, leave the
/// alternate screen), as bytes for the signal handler: the second Ctrl-C
/// exits at once (src/signals.rs) and runs no `Drop`, so the handler
/// write(2)s these to fd 1 first.
pub const RESTORE: &[u8] = b"\x1b[?25h\x1b[?1049l";

/// The alternate screen with a hidden cursor, while it lives.
pub struct LiveScreen {
    _private: (),
}

impl LiveScreen {
    /// Switches stdout (which must be a terminal) to the alternate screen.
    pub fn enter() -> io::Result<LiveScreen> {
        let mut out = io::stdout().lock();
        crossterm::queue!(out, terminal::EnterAlternateScreen, cursor::Hide)?;
        out.flush()?;
        // A second Ctrl-C exits without running Drop: give the screen
        // back from the signal handler then.
        crate::signals::on_hard_exit_write(Some(RESTORE));
        Ok(LiveScreen { _private: () })
    }

    /// Replaces the screen's contents with `frame`: home, each line then
    /// clear-to-end-of-line, then clear below. Overwriting in place rather
    /// than clearing first keeps a busy table from flickering.
    pub fn draw(&mut self, w: &mut impl Write, frame: &str) -> io::Result<()> {
        w.write_all(frame_bytes(frame).as_bytes())?;
        w.flush()
    }
}

impl Drop for LiveScreen {
    fn drop(&mut self) {
        crate::signals::on_hard_exit_write(None);
        let mut out = io::stdout().lock();
        // Nothing to do about a terminal that went away.
        let _ = crossterm::queue!(out, cursor::Show, terminal::LeaveAlternateScreen);
        let _ = out.flush();
    }
}

/// The bytes [`LiveScreen::draw`] writes for `frame`.
fn frame_bytes(frame: &str) -> String {
    let mut s = String::with_capacity(frame.len() + 64);
    s.push_str("\x1b[H");
    // No newline after the last line: on a screen exactly as tall as the
    // frame it would scroll the header away.
    for (i, line) in frame.lines().enumerate() {
        if i > 0 {
            s.push_str("\r\n");
        }
        s.push_str(line);
        s.push_str("\x1b[K");
    }
    s.push_str("\x1b[J");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_overwrites_in_place() {
        assert_eq!(frame_bytes("a\nbc\n"), "\x1b[Ha\x1b[K\r\nbc\x1b[K\x1b[J");
    }

    /// The signal-handler bytes are what `Drop` writes.
    #[test]
    fn restore_matches_drop() {
        let mut v = Vec::new();
        crossterm::queue!(v, cursor::Show, terminal::LeaveAlternateScreen).unwrap();
        assert_eq!(v, RESTORE);
    }
}
