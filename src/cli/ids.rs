//! Process IDs as people type them: a whole ID, or a unique prefix of at least
//! [`MIN_ID_PREFIX`](super::MIN_ID_PREFIX) characters (as docker and git take short ids), resolved through the
//! agent's list. Every subcommand that takes an ID calls [`resolve`] before it sends a request.

use uuid::Uuid;

use super::args::Usage;
use super::run::Failure;
use crate::api::{self, ApiError};
use crate::client::Client;

/// Most candidates an ambiguous prefix's error names (the rest are counted).
pub const MAX_CANDIDATES_SHOWN: usize = 8;

/// The whole ID that `word` names: `word` itself when it is a whole ID (no request is made),
/// else the one ID in the agent's list (its first [`api::MAX_LIST_LIMIT`] entries: running
/// ones first, then the newest) that starts with it, in any case. `command` is the subcommand,
/// for the help an ambiguous prefix points to.
///
/// # Errors
///
/// A usage error (exit code 2) when several IDs start with `word`, listing them; an error
/// answer (exit code 1) when none does, or when the list cannot be had.
pub(super) fn resolve(
    client: &Client,
    word: &str,
    command: &'static str,
) -> Result<String, Failure> {
    if let Ok(id) = Uuid::try_parse(word) {
        return Ok(id.hyphenated().to_string());
    }
    let list = client.list(api::MAX_LIST_LIMIT as usize)?;
    pick(&list.processes, word, command)
}

/// The one process in `processes` whose ID starts with `word` (in any case).
fn pick(
    processes: &[api::ProcessInfo],
    word: &str,
    command: &'static str,
) -> Result<String, Failure> {
    let prefix = word.to_ascii_lowercase();
    let candidates: Vec<&api::ProcessInfo> = processes
        .iter()
        .filter(|p| p.id.to_ascii_lowercase().starts_with(&prefix))
        .collect();
    match candidates.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => Err(Failure::Api(ApiError {
            status: Some(404),
            message: format!("No process ID starts with \"{word}\" (see procwarden ps)."),
            detail: None,
        })),
        many => {
            let mut shown: Vec<String> = many
                .iter()
                .take(MAX_CANDIDATES_SHOWN)
                .map(|p| p.id.clone())
                .collect();
            if many.len() > MAX_CANDIDATES_SHOWN {
                shown.push(format!("and {} more", many.len() - MAX_CANDIDATES_SHOWN));
            }
            Err(Failure::Usage(Usage::new(
                format!(
                    "process ID prefix \"{word}\" is ambiguous: {} processes match ({}); give \
                     more of the ID",
                    many.len(),
                    shown.join(", ")
                ),
                Some(command),
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shortest_prefix_is_named_and_a_whole_id_needs_no_request() {
        assert_eq!(super::super::MIN_ID_PREFIX, 4);
        // An unreachable agent: a whole ID is taken as it is, without a request.
        let client = Client::new("http://127.0.0.1:1");
        let id = "0B6F1C2D-0000-4000-8000-000000000000";
        assert_eq!(
            resolve(&client, id, "kill").ok().as_deref(),
            Some("0b6f1c2d-0000-4000-8000-000000000000")
        );
        // A prefix needs the list, which this agent cannot give.
        assert!(matches!(
            resolve(&client, "0b6f1c2d-0000", "kill"),
            Err(Failure::Api(ApiError { status: None, .. }))
        ));
        assert!(matches!(
            resolve(&client, "0b6f", "kill"),
            Err(Failure::Api(ApiError { status: None, .. }))
        ));
    }

    fn info(id: &str) -> api::ProcessInfo {
        api::ProcessInfo {
            id: id.into(),
            command: "true".into(),
            workdir: "/".into(),
            background: false,
            running: true,
            exit_code: None,
            started_at_unix: 0,
            exited_at_unix: None,
            pid: None,
            signal: None,
            timed_out: None,
            duration_ms: None,
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
    fn a_prefix_names_one_process_or_is_refused() {
        let list: Vec<api::ProcessInfo> = [
            "0b6f1c2d-0000-4000-8000-000000000001",
            "0b6f9999-0000-4000-8000-000000000002",
            "7c1d0000-0000-4000-8000-000000000003",
        ]
        .into_iter()
        .map(info)
        .collect();
        assert_eq!(
            pick(&list, "7C1D", "kill").ok().as_deref(),
            Some("7c1d0000-0000-4000-8000-000000000003")
        );
        assert_eq!(
            pick(&list, "0b6f1", "output").ok().as_deref(),
            Some("0b6f1c2d-0000-4000-8000-000000000001")
        );
        let Err(Failure::Usage(usage)) = pick(&list, "0b6f", "kill") else {
            panic!("ambiguous");
        };
        assert_eq!(usage.exit_code(), 2);
        assert_eq!(
            usage.to_string(),
            "process ID prefix \"0b6f\" is ambiguous: 2 processes match \
             (0b6f1c2d-0000-4000-8000-000000000001, 0b6f9999-0000-4000-8000-000000000002); give \
             more of the ID (see procwarden kill --help)"
        );
        let Err(Failure::Api(e)) = pick(&list, "ffff", "kill") else {
            panic!("no match");
        };
        assert_eq!(
            e.message,
            "No process ID starts with \"ffff\" (see procwarden ps)."
        );
        // Many candidates: the first few are named, the rest counted.
        let many: Vec<api::ProcessInfo> = (0..12)
            .map(|n| info(&format!("aaaa{n:04}-0000-4000-8000-000000000000")))
            .collect();
        let Err(Failure::Usage(usage)) = pick(&many, "aaaa", "output") else {
            panic!("ambiguous");
        };
        assert!(usage.to_string().contains("12 processes match"), "{usage}");
        assert!(usage.to_string().contains(", and 4 more)"), "{usage}");
    }
}
