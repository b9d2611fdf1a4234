//! Identifiers: a process's id. Knows nothing about processes themselves, so that errors and
//! wire types can name a process without depending on the process machinery.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// A process's id: a random (v4) UUID, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcessId(Uuid);

impl ProcessId {
    pub(crate) fn new_random() -> Self {
        ProcessId(Uuid::new_v4())
    }

    /// The UUID.
    #[must_use]
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for ProcessId {
    type Err = uuid::Error;

    /// Parses a UUID in any of its usual spellings, case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(ProcessId)
    }
}

impl From<Uuid> for ProcessId {
    fn from(uuid: Uuid) -> Self {
        ProcessId(uuid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_ids_parse_case_insensitively() {
        let id = ProcessId::new_random();
        let upper = id.to_string().to_uppercase();
        assert_eq!(upper.parse::<ProcessId>().ok(), Some(id));
        assert!("not-a-uuid".parse::<ProcessId>().is_err());
    }
}
