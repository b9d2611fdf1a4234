//! Receipts of tracked starts: what a manager remembers of every tracked identity it has seen,
//! so that a replayed start answers the process it already started, a start that conflicts or
//! was fenced is refused, and an identity whose record (and output) is gone still has its
//! final state.
//!
//! A receipt is small (a digest, a chat, a deadline, a fingerprint of the command's own fields
//! and, once the process has exited, its final [`ProcessInfo`] without command and workdir), and
//! it outlives the process record: an id is never reused within a manager, so a delayed start
//! with changed input can never become a second execution. There are at most
//! [`DEFAULT_MAX_TRACKED`](super::DEFAULT_MAX_TRACKED) of them (configurable); past that, new
//! identities are refused.
//!
//! Lock order: a process's state, then the receipts, then the table. A process's lock is never
//! taken while the receipts are held.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::{Condvar, Mutex, MutexGuard};
use uuid::Uuid;

use crate::error::Error;
use crate::id::ProcessId;
use crate::info::ProcessInfo;
use crate::process::Proc;

/// What a tracked start or cancel names: the identity and what it must match.
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    pub(crate) id: ProcessId,
    /// `None` (library callers only) matches any digest.
    pub(crate) digest: Option<String>,
    pub(crate) chat: Option<Uuid>,
    pub(crate) deadline: Option<SystemTime>,
    /// The fingerprint of the command's own fields (a start only).
    pub(crate) own: Option<[u8; 32]>,
}

/// Where a tracked identity stands.
enum Stage {
    /// Cancelled before any start arrived: no start with it may run.
    Fenced,
    /// A start holds it and is spawning: others wait for the outcome.
    Starting,
    /// The spawn failed: a replay gets the same error.
    Failed(Error),
    /// The process was started (its record may since have been forgotten).
    Started,
}

struct Receipt {
    digest: String,
    chat: Option<Uuid>,
    deadline: Option<SystemTime>,
    own: Option<[u8; 32]>,
    stage: Stage,
    /// The final state, once the process has exited (command and workdir blanked).
    terminal: Option<ProcessInfo>,
}

impl Receipt {
    /// Whether `claim` names the same start this receipt was made for.
    fn matches(&self, claim: &Claim) -> bool {
        claim.digest.as_ref().is_none_or(|d| *d == self.digest)
            && self.chat == claim.chat
            && self.deadline == claim.deadline
            && (claim.own.is_none() || self.own.is_none() || claim.own == self.own)
    }
}

/// What a start's check found.
pub(crate) enum Found {
    /// A new identity: it may run.
    New,
    /// The same start again: its process.
    Existing(Arc<Proc>),
}

/// What a cancel found (see [`Receipts::fence_or_find`]).
pub(crate) struct Fenced {
    /// The process to kill, if its record exists.
    pub(crate) proc: Option<Arc<Proc>>,
    /// Whether the identity never started (fenced now or before, or its start failed).
    pub(crate) fenced: bool,
    /// Its final state, if known.
    pub(crate) terminal: Option<ProcessInfo>,
}

/// What an output-tracked request found.
pub(crate) struct Known {
    pub(crate) digest: String,
    pub(crate) chat: Option<Uuid>,
    pub(crate) terminal: Option<ProcessInfo>,
}

/// The receipts of one manager.
pub(crate) struct Receipts {
    map: Mutex<HashMap<ProcessId, Receipt>>,
    /// Notified when a start leaves [`Stage::Starting`].
    settled: Condvar,
    limit: usize,
}

impl Receipts {
    pub(crate) fn new(limit: usize) -> Receipts {
        Receipts {
            map: Mutex::new(HashMap::new()),
            settled: Condvar::new(),
            limit,
        }
    }

    /// Locks the map once no start of `id` is spawning.
    fn settled(&self, id: &ProcessId) -> MutexGuard<'_, HashMap<ProcessId, Receipt>> {
        let mut map = self.map.lock();
        while map
            .get(id)
            .is_some_and(|r| matches!(r.stage, Stage::Starting))
        {
            self.settled.wait(&mut map);
        }
        map
    }

    /// Checks a tracked start as coder's agent does, in its order; with `reserve`, a new
    /// identity is taken for this start (its receipt is `Starting` until [`finish`]).
    /// `lookup` finds a process record by id (the table; taken with the receipts locked).
    ///
    /// [`finish`]: Self::finish
    pub(crate) fn check_start(
        &self,
        claim: &Claim,
        reserve: bool,
        lookup: impl Fn(&ProcessId) -> Option<Arc<Proc>>,
    ) -> Result<Found, Error> {
        let mut map = self.settled(&claim.id);
        if let Some(receipt) = map.get(&claim.id) {
            if !receipt.matches(claim) {
                return Err(Error::TrackedConflict);
            }
            return match &receipt.stage {
                Stage::Fenced => Err(Error::TrackedConflict),
                Stage::Failed(e) => Err(e.replica()),
                Stage::Starting | Stage::Started => match lookup(&claim.id) {
                    Some(proc) => Ok(Found::Existing(proc)),
                    None => Err(Error::TrackedExpired),
                },
            };
        }
        if lookup(&claim.id).is_some() {
            return Err(Error::TrackedConflict);
        }
        if claim.deadline.is_some_and(|d| d <= SystemTime::now()) {
            return Err(Error::TrackedExpired);
        }
        if map.len() >= self.limit {
            return Err(Error::TrackedCapacity { limit: self.limit });
        }
        if reserve {
            map.insert(
                claim.id,
                Receipt {
                    digest: claim.digest.clone().unwrap_or_default(),
                    chat: claim.chat,
                    deadline: claim.deadline,
                    own: claim.own,
                    stage: Stage::Starting,
                    terminal: None,
                },
            );
        }
        Ok(Found::New)
    }

    /// The reserved start of `id` is over: started, or failed with `error` (a start refused
    /// because the manager is closing leaves no receipt: it never began).
    pub(crate) fn finish(&self, id: &ProcessId, error: Option<&Error>) {
        let mut map = self.map.lock();
        match error {
            Some(Error::ShuttingDown) => {
                map.remove(id);
            }
            Some(e) => {
                if let Some(r) = map.get_mut(id) {
                    r.stage = Stage::Failed(e.replica());
                }
            }
            None => {
                if let Some(r) = map.get_mut(id) {
                    r.stage = Stage::Started;
                }
            }
        }
        drop(map);
        self.settled.notify_all();
    }

    /// Keeps the final state of a tracked process (called when it is marked exited; a
    /// contained one's accounting follows in [`record_accounting`]).
    ///
    /// [`record_accounting`]: Self::record_accounting
    pub(crate) fn record_terminal(&self, id: &ProcessId, mut info: ProcessInfo) {
        info.command.clear();
        info.workdir = std::path::PathBuf::new();
        info.members_alive = false;
        if let Some(r) = self.map.lock().get_mut(id) {
            r.terminal = Some(info);
        }
    }

    /// Adds the cgroup's accounting (`cpu_ms`, `memory_peak_bytes`, `oom_killed`) to the final
    /// state of a tracked process whose cgroup has just emptied. [`record_terminal`] keeps
    /// that state at the exit, without them: they are read once nothing of the tree is left
    /// (the contract's final info carries them, as the process's own info does).
    ///
    /// [`record_terminal`]: Self::record_terminal
    pub(crate) fn record_accounting(&self, id: &ProcessId, info: &ProcessInfo) {
        let mut map = self.map.lock();
        if let Some(terminal) = map.get_mut(id).and_then(|r| r.terminal.as_mut()) {
            terminal.cpu_ms = info.cpu_ms;
            terminal.memory_peak_bytes = info.memory_peak_bytes;
            terminal.oom_killed = info.oom_killed;
        }
    }

    /// A cancel: an identity never seen is fenced (no start with it will run); a known one
    /// must match. Returns the process to kill, if its record exists. `closing`: a closing
    /// manager refuses (coder's agent answers a closed manager as a conflict).
    pub(crate) fn fence_or_find(
        &self,
        claim: &Claim,
        closing: bool,
        lookup: impl Fn(&ProcessId) -> Option<Arc<Proc>>,
    ) -> Result<Fenced, Error> {
        if closing {
            return Err(Error::TrackedConflict);
        }
        let mut map = self.settled(&claim.id);
        if let Some(receipt) = map.get(&claim.id) {
            if !receipt.matches(claim) {
                return Err(Error::TrackedConflict);
            }
        } else {
            if lookup(&claim.id).is_some() {
                return Err(Error::TrackedConflict);
            }
            if map.len() >= self.limit {
                return Err(Error::TrackedCapacity { limit: self.limit });
            }
            map.insert(
                claim.id,
                Receipt {
                    digest: claim.digest.clone().unwrap_or_default(),
                    chat: claim.chat,
                    deadline: claim.deadline,
                    own: None,
                    stage: Stage::Fenced,
                    terminal: None,
                },
            );
        }
        let receipt = &map[&claim.id];
        Ok(Fenced {
            proc: lookup(&claim.id),
            fenced: matches!(receipt.stage, Stage::Fenced | Stage::Failed(_)),
            terminal: receipt.terminal.clone(),
        })
    }

    /// What the receipt of `id` says, if there is one.
    pub(crate) fn known(&self, id: &ProcessId) -> Option<Known> {
        let map = self.settled(id);
        map.get(id).map(|r| Known {
            digest: r.digest.clone(),
            chat: r.chat,
            terminal: r.terminal.clone(),
        })
    }

    /// How many identities are known.
    pub(crate) fn len(&self) -> usize {
        self.map.lock().len()
    }
}
