//! `procwarden manpage`: the manual page procwarden(1) in roff (man(7) macros), made from the
//! help texts in `args`, so that it says exactly what `--help` says.

use super::args::{OVERVIEW, SUBCOMMANDS};
use super::complete::summary;

/// Escapes plain text for roff: backslashes, a leading `.` or `'` (which would start a
/// request), and `-` (a plain hyphen in roff may be typeset as a dash; options need `\-`).
fn roff(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let escaped = line.replace('\\', "\\e").replace('-', "\\-");
        if escaped.starts_with(['.', '\'']) {
            out.push_str("\\&");
        }
        out.push_str(&escaped);
        out.push('\n');
    }
    out
}

/// The whole page.
pub(super) fn page() -> String {
    let version = env!("CARGO_PKG_VERSION");
    let (title, overview) = OVERVIEW.split_once("\n\n").unwrap_or(("", OVERVIEW));
    let description = title.split_once(": ").map_or(title, |(_, d)| d);
    let mut s = String::new();
    s.push_str(&format!(
        ".TH PROCWARDEN 1 \"\" \"procwarden {version}\" \"User Commands\"\n"
    ));
    s.push_str(".SH NAME\n");
    s.push_str(&format!(
        "procwarden \\- {}\n",
        roff(description).trim_end()
    ));
    s.push_str(".SH SYNOPSIS\n.nf\n");
    s.push_str(&roff(overview));
    s.push_str(".fi\n");
    s.push_str(".SH DESCRIPTION\n");
    s.push_str(
        "procwarden runs shell commands for AI agents and other programs: it keeps a bounded \
         head and tail of each command's output, waits for exits without polling, and signals \
         whole process groups. \\fBprocwarden serve\\fR is the HTTP agent; the other commands \
         are its clients (or, for \\fBmcp\\fR, an MCP server of the same tools).\n",
    );
    s.push_str(".SH COMMANDS\n");
    for (name, help) in SUBCOMMANDS {
        s.push_str(&format!(".SS {name}\n"));
        let line = summary(name);
        if !line.is_empty() {
            s.push_str(&roff(line));
        }
        s.push_str(".PP\n.nf\n");
        s.push_str(&roff(help));
        s.push_str(".fi\n");
    }
    s.push_str(".SH ENVIRONMENT\n");
    for (name, text) in [
        (
            "PROCWARDEN_URL",
            "the agent's base URL when \\-\\-url is not given",
        ),
        (
            "PROCWARDEN_TOKEN",
            "the bearer token (for serve: the token to require, unless \\-\\-token-file)",
        ),
        ("RUST_LOG", "the log level of serve and mcp (default info)"),
        (
            "COLUMNS",
            "the width that ps fits its table to (default 120)",
        ),
    ] {
        s.push_str(&format!(".TP\n.B {name}\n{text}\n"));
    }
    s.push_str(".SH EXIT STATUS\n");
    s.push_str(
        "0 on success; 1 for an error answer or no answer; 2 for a usage error. \\fBexec\\fR and \
         \\fBoutput\\fR exit with the process's status: its exit code, 128+N when signal N \
         ended it, 124 when it timed out; \\fBexec\\fR exits 130 when Ctrl\\-C interrupted \
         it.\n",
    );
    s.push_str(".SH SEE ALSO\n");
    s.push_str("timeout(1), kill(1), ssh(1)\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_every_command_and_no_unescaped_request() {
        let page = page();
        assert!(page.starts_with(".TH PROCWARDEN 1 "));
        for (name, _) in SUBCOMMANDS {
            assert!(page.contains(&format!(".SS {name}\n")), "{name}");
        }
        assert!(page.contains("\\-\\-detach\\-on\\-interrupt"));
        assert_eq!(roff(".x\n'y\na\\b"), "\\&.x\n\\&'y\na\\eb\n");
    }
}
