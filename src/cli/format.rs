//! The human form of the client subcommands' answers: the `ps` table, durations, the status
//! column, the `tools` summary, and one-line messages. Pure functions of their inputs.

use super::MIN_COMMAND_COLUMNS;
use crate::api;

/// `850ms`, `12s`, `3m05s`, `2h03m`, `3d04h`.
fn human_duration(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    if s < 60 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 60 {
        return format!("{m}m{:02}s", s % 60);
    }
    let h = m / 60;
    if h < 24 {
        return format!("{h}h{:02}m", m % 60);
    }
    format!("{}d{:02}h", h / 24, h % 24)
}

/// The STATUS column.
fn status_text(p: &api::ProcessInfo) -> String {
    if p.running {
        "running".into()
    } else if p.timed_out == Some(true) {
        "timed out".into()
    } else if let Some(signal) = &p.signal {
        signal.clone()
    } else {
        match p.exit_code {
            Some(code) => format!("exit {code}"),
            None => "exited".into(),
        }
    }
}

/// The TIME column: how long it has run (by `now_unix`), or ran.
fn time_text(p: &api::ProcessInfo, now_unix: i64) -> String {
    if p.running {
        // Start times are whole seconds: a younger process shows as 0s, not 0ms.
        let age = u64::try_from(now_unix.saturating_sub(p.started_at_unix)).unwrap_or(0);
        if age == 0 {
            "0s".into()
        } else {
            human_duration(age.saturating_mul(1000))
        }
    } else {
        p.duration_ms.map_or_else(|| "-".into(), human_duration)
    }
}

/// The `ps` table; `columns: None` never cuts the command.
pub(super) fn ps_table(
    processes: &[api::ProcessInfo],
    now_unix: i64,
    columns: Option<usize>,
) -> String {
    let header = ["ID", "PID", "STATUS", "TIME"];
    let rows: Vec<[String; 5]> = processes
        .iter()
        .map(|p| {
            let command: String = p
                .command
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            [
                p.id.clone(),
                p.pid.map_or_else(|| "-".into(), |pid| pid.to_string()),
                status_text(p),
                time_text(p, now_unix),
                command,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let used: usize = widths.iter().sum::<usize>() + 2 * widths.len();
    let command_width = columns.map(|c| c.saturating_sub(used).max(MIN_COMMAND_COLUMNS));
    let line = |cells: [&str; 5]| {
        let command = match command_width {
            Some(width) if cells[4].chars().count() > width => {
                let mut cut: String = cells[4].chars().take(width - 1).collect();
                cut.push('…');
                cut
            }
            _ => cells[4].to_string(),
        };
        format!(
            "{:<w0$}  {:>w1$}  {:<w2$}  {:>w3$}  {command}\n",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
        )
    };
    let mut table = line([header[0], header[1], header[2], header[3], "COMMAND"]);
    for row in &rows {
        table.push_str(&line([&row[0], &row[1], &row[2], &row[3], &row[4]]));
    }
    table
}

/// `tools` without `--schema`: each tool's name and the first sentence of its description.
pub(super) fn tools_summary(definitions: &serde_json::Value) -> String {
    let mut text = String::new();
    for tool in definitions.as_array().into_iter().flatten() {
        let name = tool["name"].as_str().unwrap_or_default();
        let description = tool["description"].as_str().unwrap_or_default();
        let first = description
            .split_once(". ")
            .map_or(description, |(first, _)| first)
            .trim_end_matches('.');
        text.push_str(&format!("{name:<16}{first}.\n"));
    }
    text
}

/// Joins the lines of a message into one.
pub(super) fn one_line(text: &str) -> String {
    text.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(human_duration(850), "850ms");
        assert_eq!(human_duration(12_400), "12s");
        assert_eq!(human_duration(185_000), "3m05s");
        assert_eq!(human_duration(7_380_000), "2h03m");
        assert_eq!(human_duration(273_600_000), "3d04h");
    }

    fn info(id: &str, running: bool, command: &str) -> api::ProcessInfo {
        api::ProcessInfo {
            id: id.into(),
            command: command.into(),
            workdir: "/".into(),
            background: false,
            running,
            exit_code: (!running).then_some(3),
            started_at_unix: 1000,
            exited_at_unix: (!running).then_some(1001),
            pid: Some(4242),
            signal: None,
            timed_out: None,
            duration_ms: (!running).then_some(1500),
            members_alive: None,
            contained: None,
            stopped: None,
            cpu_ms: None,
            memory_peak_bytes: None,
            oom_killed: None,
            stdin_open: None,
            tty: None,
        }
    }

    #[test]
    fn the_ps_table_fits_the_width() {
        let list = [
            info("aaaa", true, "sleep 30"),
            info("bbbb", false, &format!("echo {}\nnext", "x".repeat(100))),
        ];
        assert!(ps_table(&list, 1000, None).contains("aaaa  4242  running    0s  sleep 30"));
        let table = ps_table(&list, 1065, Some(60));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "ID     PID  STATUS    TIME  COMMAND");
        assert_eq!(lines[1], "aaaa  4242  running  1m05s  sleep 30");
        assert!(
            lines[2].starts_with("bbbb  4242  exit 3      1s  echo xxx"),
            "{table}"
        );
        assert!(lines[2].ends_with('…'), "{table}");
        assert!(lines.iter().all(|l| l.chars().count() <= 60), "{table}");
        let wide = ps_table(&list, 1065, None);
        assert!(
            wide.contains(&format!("echo {} next", "x".repeat(100))),
            "{wide}"
        );
    }

    #[test]
    fn messages_become_one_line() {
        assert_eq!(one_line("a\nb\r\n  c \n"), "a b c");
    }
}
