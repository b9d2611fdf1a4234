//! Plain rendering: the text a terminal would show for a stream, for readers (people, models)
//! who want words, not escape sequences.
//!
//! A program that runs under a terminal, or thinks it does (`ls --color=always`, `git` with
//! `color.ui=always`, progress bars), writes escape sequences and carriage returns that are
//! noise in a log. [`render`] turns such text into what a terminal shows, line by line:
//!
//! - escape sequences are removed: CSI (`ESC [ ... final`), OSC (`ESC ] ... BEL` or
//!   `... ESC \`), DCS and the other strings, and two-byte `ESC x` sequences; the parsing is
//!   [`vte`]'s, the state machine under alacritty, so every sequence a terminal recognises ends
//!   where the terminal would end it;
//! - `\r\n` is a line end (`\n`), and a lone `\r` returns to the start of the line: what follows
//!   overwrites the line character by character (`abcdef\rXY` shows `XYcdef`, a progress bar
//!   `10%\r20%\r30%` shows `30%`);
//! - backspace moves one character left (a shell echoing an erased character writes
//!   `\b \b`), and "erase in line" (`ESC [ K`, `ESC [ 1 K`, `ESC [ 2 K`) erases as a terminal
//!   does, since progress bars write `\r ESC [ K` before a shorter update;
//! - a tab is kept; every other control character (bell, shift-in, ...) is dropped.
//!
//! Nothing else of a screen is modelled (no cursor addressing, no scrolling): a full-screen
//! program's plain rendering is its text in the order it was written.
//!
//! The input is text that the caller already decoded (invalid UTF-8 replaced), so rendering
//! never has to decide about bytes.

use vte::{Params, Parser, Perform};

/// The plain rendering of `text`: escape sequences removed, `\r\n` as `\n`, a lone `\r`
/// overwriting the line from its start. See the [module docs](self).
pub(crate) fn render(text: &str) -> String {
    // Most output (a build log, `ls` without color) has nothing a terminal would act on:
    // it renders as itself, without the parser's per-character work (about 10x the copy).
    if !needs_terminal(text) {
        return text.to_string();
    }
    render_with_parser(text)
}

/// Whether `text` holds anything the parser acts on: a C0 control other than `\n` and `\t`
/// (escape, `\r`, backspace, ...), DEL, or a C1 control (U+0080 to U+009F, `C2 80` to
/// `C2 9F` in UTF-8).
fn needs_terminal(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().any(|(i, &b)| {
        (b < 0x20 && b != b'\n' && b != b'\t')
            || b == 0x7f
            || (b == 0xc2 && bytes.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n)))
    })
}

/// [`render`] through the escape-sequence parser, for any text.
fn render_with_parser(text: &str) -> String {
    let mut screen = Line {
        out: String::with_capacity(text.len()),
        line: Vec::new(),
        col: 0,
    };
    let mut parser = Parser::new();
    parser.advance(&mut screen, text.as_bytes());
    // A sequence still open at the end (cut by the end of the text) shows nothing, as on a
    // terminal, which would wait for the rest.
    screen.finish()
}

/// The line being written, and everything before it.
struct Line {
    /// Finished lines, each with its `\n`.
    out: String,
    /// The current line's characters.
    line: Vec<char>,
    /// The column the next character is written to; may lie past the line's end after an
    /// erase, in which case the gap is filled with spaces.
    col: usize,
}

impl Line {
    fn put(&mut self, c: char) {
        if self.col < self.line.len() {
            self.line[self.col] = c;
        } else {
            self.line.resize(self.col, ' ');
            self.line.push(c);
        }
        self.col += 1;
    }

    fn end_line(&mut self) {
        self.out.extend(self.line.drain(..));
        self.out.push('\n');
        self.col = 0;
    }

    fn finish(mut self) -> String {
        self.out.extend(self.line.drain(..));
        self.out
    }

    /// `ESC [ n K`: 0 erases from the cursor to the end of the line, 1 from the start to the
    /// cursor (inclusive), 2 the whole line. The cursor does not move.
    fn erase_in_line(&mut self, mode: u16) {
        match mode {
            0 => self.line.truncate(self.col),
            1 => {
                let end = (self.col + 1).min(self.line.len());
                self.line[..end].fill(' ');
            }
            2 => self.line.clear(),
            _ => {}
        }
    }
}

impl Perform for Line {
    fn print(&mut self, c: char) {
        self.put(c);
    }

    fn execute(&mut self, byte: u8) {
        match byte {
            b'\n' => self.end_line(),
            b'\r' => self.col = 0,
            b'\t' => self.put('\t'),
            0x08 => self.col = self.col.saturating_sub(1),
            _ => {}
        }
    }

    fn csi_dispatch(&mut self, params: &Params, intermediates: &[u8], ignore: bool, action: char) {
        // A private or otherwise unusual `K` (`ESC [ ? K`, selective erase) is left alone like
        // every other sequence.
        if action == 'K' && intermediates.is_empty() && !ignore {
            let mode = params
                .iter()
                .next()
                .and_then(|p| p.first().copied())
                .unwrap_or(0);
            self.erase_in_line(mode);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{needs_terminal, render, render_with_parser};

    /// The shortcut for text without controls gives what the parser gives.
    #[test]
    fn the_shortcut_agrees_with_the_parser() {
        for text in [
            "",
            "plain words\n",
            "tabs\tand\ttrailing   \nno end",
            "wide \u{4e16}\u{754c} and combining e\u{301}\n",
            "\u{a0}\u{ff}\u{100} latin\n",
        ] {
            assert!(!needs_terminal(text), "{text:?}");
            assert_eq!(render(text), render_with_parser(text), "{text:?}");
            assert_eq!(render(text), text);
        }
        for text in [
            "a\rb",
            "\x1b[1mx",
            "a\x08b",
            "del\x7f",
            "c1\u{9b}1m",
            "bell\x07",
        ] {
            assert!(needs_terminal(text), "{text:?}");
        }
    }

    #[test]
    fn text_without_controls_is_unchanged() {
        for text in [
            "",
            "a",
            "hello\nworld\n",
            "tab\there",
            "€uro ünïcode\n",
            "\n\n",
        ] {
            assert_eq!(render(text), text);
        }
    }

    #[test]
    fn crlf_is_a_line_end() {
        assert_eq!(render("one\r\ntwo\r\n"), "one\ntwo\n");
        assert_eq!(render("\r\n\r\n"), "\n\n");
    }

    #[test]
    fn a_lone_cr_overwrites_from_the_start_of_the_line() {
        assert_eq!(render("abcdef\rXY"), "XYcdef");
        assert_eq!(render("10%\r20%\r30%"), "30%");
        assert_eq!(render("10%\r20%\r30%\n"), "30%\n");
        assert_eq!(render("abc\r"), "abc");
        assert_eq!(render("abc\r\rd"), "dbc");
        // Only the current line is overwritten.
        assert_eq!(render("first\nabcdef\rXY\nlast"), "first\nXYcdef\nlast");
    }

    #[test]
    fn colors_are_removed() {
        assert_eq!(
            render("\x1b[0m\x1b[01;34mdir\x1b[0m  \x1b[01;32mexe\x1b[0m\n"),
            "dir  exe\n"
        );
        assert_eq!(render("\x1b[38;2;255;0;0mred\x1b[m"), "red");
        assert_eq!(render("\x1b[?25lhidden cursor\x1b[?25h"), "hidden cursor");
    }

    #[test]
    fn osc_ends_at_bel_or_string_terminator() {
        assert_eq!(render("\x1b]0;window title\x07prompt$ "), "prompt$ ");
        assert_eq!(render("\x1b]0;title\x1b\\after"), "after");
        // A hyperlink: the text between the two OSC 8 sequences stays.
        assert_eq!(
            render("\x1b]8;;http://example.com\x1b\\link\x1b]8;;\x1b\\ text"),
            "link text"
        );
    }

    #[test]
    fn two_byte_escapes_are_removed() {
        assert_eq!(render("a\x1b7b\x1b8c\x1bMd"), "abcd");
        // Character set designation (an intermediate byte, then the final).
        assert_eq!(render("\x1b(Bplain"), "plain");
    }

    #[test]
    fn a_sequence_cut_by_the_end_shows_nothing() {
        assert_eq!(render("text\x1b["), "text");
        assert_eq!(render("text\x1b[01;3"), "text");
        assert_eq!(render("text\x1b]0;unterminated title"), "text");
        assert_eq!(render("text\x1b"), "text");
    }

    #[test]
    fn other_controls_are_dropped() {
        assert_eq!(render("bell\x07 and shift\x0e\x0f"), "bell and shift");
    }

    #[test]
    fn backspace_moves_left() {
        // A shell erasing the last typed character.
        assert_eq!(render("lsx\x08 \x08\r\n"), "ls \n");
        assert_eq!(render("\x08\x08a"), "a");
        assert_eq!(render("ab\x08c"), "ac");
    }

    #[test]
    fn erase_in_line_erases_as_a_terminal_does() {
        // A progress bar that shortens: `\r`, erase to the end, the new text.
        assert_eq!(render("copying 100 files\r\x1b[Kdone\n"), "done\n");
        assert_eq!(render("copying 100 files\r\x1b[0Kdone"), "done");
        assert_eq!(render("abcdef\x1b[2KXY"), "      XY");
        assert_eq!(render("abcdef\r\x08\x1b[2Kx"), "x");
        // Columns 0..=2 erased, then `c` written at column 2.
        assert_eq!(render("abcdef\rab\x1b[1Kc"), "  cdef");
    }

    #[test]
    fn a_progress_bar_as_tools_draw_it() {
        let mut bar = String::new();
        for pct in (0..=100).step_by(10) {
            bar.push_str(&format!(
                "\r\x1b[32m{:<10}\x1b[0m {pct:>3}%",
                "#".repeat(pct / 10)
            ));
        }
        bar.push_str("\r\ndone\r\n");
        assert_eq!(render(&bar), "########## 100%\ndone\n");
    }

    #[test]
    fn replacement_characters_are_kept() {
        assert_eq!(render("a\u{FFFD}b"), "a\u{FFFD}b");
    }
}
