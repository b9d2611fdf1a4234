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
    let prefix = word.to_ascii_lowercase();
    let list = client.list(api::MAX_LIST_LIMIT as usize)?;
    let candidates: Vec<&api::ProcessInfo> = list
        .processes
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
            resolve(&client, "0b6f", "kill"),
            Err(Failure::Api(ApiError { status: None, .. }))
        ));
    }
}
