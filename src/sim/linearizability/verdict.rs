//! What the checker concludes, and a violation written for a human: the key, how far a
//! linearization got, and the operation it could not place, with times.

use std::fmt;

use super::history::{Command, Completion, Operation, OperationId, Response};
use super::model::step;

/// Operations of a violation's prefix and candidate list shown in its text (the struct keeps
/// all of them).
const SHOWN_MAX: usize = 12;

/// The checker's conclusion about a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's operations have a linearization; `explored` distinct search states were
    /// reached over all keys (how much the check had to work).
    Linearizable {
        /// States reached, summed over keys.
        explored: usize,
    },
    /// Some key's operations have none (the smallest such key).
    Violation(Box<Violation>),
    /// The search of `key` reached more than the allowed number of states before an answer,
    /// and no other key has a violation. Not a pass: the caller decides what it means.
    Inconclusive {
        /// The (smallest) key whose search was cut short.
        key: u64,
        /// States it reached.
        explored: usize,
    },
}

/// A key whose operations have no linearization, and the deepest dead end the search found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The key.
    pub key: u64,
    /// How many of the key's operations were judged (unknown reads are not: they constrain
    /// nothing).
    pub operations: usize,
    /// The longest linearizable prefix found, in linearization order.
    pub prefix: Vec<(OperationId, Operation)>,
    /// The key's value after the prefix (`None`: absent).
    pub value: Option<u64>,
    /// The operation that could not be placed next: it was answered before it found a place,
    /// and no candidate below lets it have one.
    pub blocked: (OperationId, Operation),
    /// The other operations not in the prefix that were invoked before `blocked` completed:
    /// each was tried after the prefix, and none leads to a linearization.
    pub pending: Vec<(OperationId, Operation)>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "key {}: not linearizable ({} of its {} operations placed before a dead end)",
            self.key,
            self.prefix.len(),
            self.operations
        )?;
        let skipped = self.prefix.len().saturating_sub(SHOWN_MAX);
        if skipped > 0 {
            writeln!(
                f,
                "  longest linearizable prefix (first {skipped} not shown):"
            )?;
        } else {
            writeln!(f, "  longest linearizable prefix:")?;
        }
        for (id, operation) in &self.prefix[skipped..] {
            writeln!(f, "    #{} {operation}", id.0)?;
        }
        writeln!(f, "  value after it: {}", Shown(self.value))?;
        let (id, operation) = &self.blocked;
        // The blocked operation was answered: unknown outcomes return at +infinity.
        let impossible = match &operation.completion {
            Completion::Returned { response, .. } => {
                step(self.value, &operation.command, Some(response)).is_none()
            }
            Completion::Unknown => false,
        };
        let why = if impossible {
            "impossible from that value"
        } else {
            "possible from that value, but no order of the rest follows it"
        };
        writeln!(f, "  cannot place #{} {operation}: {why}", id.0)?;
        if self.pending.is_empty() {
            writeln!(f, "  no other operation was pending")?;
        } else {
            writeln!(f, "  pending then, each tried first without success:")?;
            for (id, operation) in self.pending.iter().take(SHOWN_MAX) {
                writeln!(f, "    #{} {operation}", id.0)?;
            }
            let hidden = self.pending.len().saturating_sub(SHOWN_MAX);
            if hidden > 0 {
                writeln!(f, "    ({hidden} more)")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Linearizable { explored } => {
                write!(f, "linearizable ({explored} states explored)")
            }
            Self::Violation(violation) => write!(f, "{violation}"),
            Self::Inconclusive { key, explored } => write!(
                f,
                "inconclusive: key {key} reached {explored} states without an answer"
            ),
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {} ", self.client)?;
        match self.completion {
            Completion::Returned { at, .. } => write!(f, "[{}, {at}] ", self.invoked_at)?,
            Completion::Unknown => write!(f, "[{}, unknown] ", self.invoked_at)?,
        }
        match self.command {
            Command::Write { value, .. } => write!(f, "write {value}")?,
            Command::Read { .. } => write!(f, "read")?,
            Command::CompareAndSet { expected, new, .. } => {
                write!(f, "compare-and-set {} -> {new}", Shown(expected))?;
            }
        }
        match self.completion {
            Completion::Returned {
                response: Response::Read(value),
                ..
            } => write!(f, " -> {}", Shown(value)),
            Completion::Returned {
                response: Response::CompareAndSet(done),
                ..
            } => write!(f, " -> {done}"),
            Completion::Returned { .. } => write!(f, " -> ok"),
            Completion::Unknown => write!(f, " -> outcome unknown"),
        }
    }
}

/// A key's value as text: the number, or `absent`.
struct Shown(Option<u64>);

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(value) => write!(f, "{value}"),
            None => write!(f, "absent"),
        }
    }
}
