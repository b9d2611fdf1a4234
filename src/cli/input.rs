//! `procwarden input ID [--close] [TEXT | -]`: input for a process from a script. TEXT is sent
//! as it is (no line end is added: a program reading lines wants `$'y\n'`); `-` sends stdin as
//! it arrives, one request per read, so `tail -f log | procwarden input ID -` streams.

use std::io::{self, Read};

use base64::Engine as _;

use crate::api::{self, ApiError, ProcessApi};

/// Most bytes of stdin one input request carries (`input ID -`).
pub const INPUT_CHUNK_BYTES: usize = 65536;

/// What to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Source {
    /// Nothing (only `--close`).
    Nothing,
    /// This text.
    Text(String),
    /// Stdin, to its end.
    Stdin,
}

/// Sends `source` to process `id`, then closes its input if `close`. Returns the last answer
/// (`None` when nothing had to be sent: empty stdin without `--close`).
///
/// # Errors
///
/// The first error answer (or no answer): what was sent before it stays sent.
pub(super) fn send(
    api: &dyn ProcessApi,
    id: &str,
    source: &Source,
    close: bool,
) -> Result<Option<api::InputResponse>, ApiError> {
    let request = |bytes: &[u8], close: bool| api::InputRequest {
        data: None,
        data_base64: (!bytes.is_empty())
            .then(|| base64::engine::general_purpose::STANDARD.encode(bytes)),
        close: close.then_some(true),
    };
    match source {
        Source::Nothing => api.input(id, &request(&[], true)).map(Some),
        Source::Text(text) => api
            .input(
                id,
                &api::InputRequest {
                    data: Some(text.clone()),
                    data_base64: None,
                    close: close.then_some(true),
                },
            )
            .map(Some),
        Source::Stdin => {
            let mut stdin = io::stdin().lock();
            let mut buf = vec![0u8; INPUT_CHUNK_BYTES];
            let mut last = None;
            loop {
                let n = match stdin.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(ApiError {
                            status: None,
                            message: "Cannot read stdin.".into(),
                            detail: Some(e.to_string()),
                        });
                    }
                };
                if n == 0 {
                    break;
                }
                last = Some(api.input(id, &request(&buf[..n], false))?);
            }
            if close {
                last = Some(api.input(id, &request(&[], true))?);
            }
            Ok(last)
        }
    }
}
