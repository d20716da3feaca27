//! A client history of a key-value store: what each client asked, when, and what it was told.
//!
//! Only the recording lives here; judging it is `search.rs`'s job. The history refuses what
//! cannot happen (an answer before its question, an answer of the wrong kind, two answers to
//! one operation) with a [`HistoryError`], so a checker verdict is never about a malformed
//! record.

use thiserror::Error;

/// What a client asked the store. Keys and values are plain `u64`s; a key that was never
/// written reads as `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Set `key` to `value`.
    Write {
        /// The key written.
        key: u64,
        /// The value it is set to.
        value: u64,
    },
    /// Read `key`.
    Read {
        /// The key read.
        key: u64,
    },
    /// Set `key` to `new` if its value is `expected` (`None`: the key is absent); the answer
    /// says whether it did.
    CompareAndSet {
        /// The key compared and maybe set.
        key: u64,
        /// The value the key must hold for the set to happen (`None`: never written).
        expected: Option<u64>,
        /// The value set when the comparison holds.
        new: u64,
    },
}

impl Command {
    /// The one key the command touches (the checker partitions the history by it).
    pub fn key(&self) -> u64 {
        match *self {
            Self::Write { key, .. } | Self::Read { key } | Self::CompareAndSet { key, .. } => key,
        }
    }

    /// Whether `response` is the kind of answer this command gets.
    pub fn answered_by(&self, response: &Response) -> bool {
        matches!(
            (self, response),
            (Self::Write { .. }, Response::Write)
                | (Self::Read { .. }, Response::Read(_))
                | (Self::CompareAndSet { .. }, Response::CompareAndSet(_))
        )
    }
}

/// A definite, successful answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Response {
    /// The write took effect.
    Write,
    /// The value read (`None`: the key was absent).
    Read(Option<u64>),
    /// Whether the compare-and-set found `expected` and set `new`.
    CompareAndSet(bool),
}

/// How an operation ended, as far as its client knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Completion {
    /// Answered with `response` at time `at`: it took effect once, somewhere between its
    /// invocation and `at`.
    Returned {
        /// The answer.
        response: Response,
        /// When the client received it.
        at: u64,
    },
    /// Never answered, timed out, or answered "outcome unknown": it may have taken effect at
    /// any time after its invocation (even after every other operation), or never.
    Unknown,
}

/// One operation of a history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Operation {
    /// The client (process) that issued it; only reported, the checker judges by times.
    pub client: u64,
    /// What was asked.
    pub command: Command,
    /// When the client sent it.
    pub invoked_at: u64,
    /// How it ended.
    pub completion: Completion,
}

/// Index of an operation in its [`History`], stable for the history's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OperationId(pub usize);

/// A history refused a record that cannot happen.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HistoryError {
    /// No operation has this id, or it was failed (left out) already.
    #[error("operation #{0} is not in the history")]
    UnknownOperation(usize),
    /// The operation already has its answer.
    #[error("operation #{0} was already answered")]
    AlreadyCompleted(usize),
    /// The answer came before the question.
    #[error("operation #{id} completed at {completed_at}, before its invocation at {invoked_at}")]
    CompletedBeforeInvoked {
        /// The operation.
        id: usize,
        /// When it was invoked.
        invoked_at: u64,
        /// When it was said to complete.
        completed_at: u64,
    },
    /// The answer's kind does not match the command (a read answered as a write).
    #[error("operation #{id}: {response:?} does not answer {command:?}")]
    ResponseMismatch {
        /// The operation.
        id: usize,
        /// Its command.
        command: Command,
        /// The answer given.
        response: Response,
    },
}

/// The operations of a key-value workload, in the order they were recorded.
///
/// Times are any `u64` stamp that never goes backwards (virtual nanoseconds, or an event
/// counter). Operation `a` precedes `b` in real time only when `a` completed strictly before
/// `b` was invoked; equal stamps count as concurrent, which never flags a correct store (a
/// recorder with a coarse clock loses precision, not soundness). An operation still without an
/// answer when the history is checked counts as [`Completion::Unknown`].
///
/// An operation answered with a definite failure (it did not take effect) is left out with
/// [`History::fail`]: the checker never sees it. Whether a "failed" write really never took
/// effect is a separate property; if it did take effect and was read, this checker reports the
/// read as a violation, because no operation in the history wrote that value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    // `None`: failed, left out (ids of the others stay stable).
    operations: Vec<Option<Operation>>,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `client` sent `command` at `at`; the answer comes with [`complete`] or
    /// [`fail`], or never (then it is [`Completion::Unknown`]).
    ///
    /// [`complete`]: Self::complete
    /// [`fail`]: Self::fail
    pub fn invoke(&mut self, client: u64, command: Command, at: u64) -> OperationId {
        self.operations.push(Some(Operation {
            client,
            command,
            invoked_at: at,
            completion: Completion::Unknown,
        }));
        OperationId(self.operations.len() - 1)
    }

    /// Records the definite, successful answer to `id`, received at `at`.
    ///
    /// # Errors
    /// [`HistoryError`] when `id` is not pending in this history, the answer is of the wrong
    /// kind, or `at` is before the invocation.
    pub fn complete(
        &mut self,
        id: OperationId,
        response: Response,
        at: u64,
    ) -> Result<(), HistoryError> {
        let operation = self
            .operations
            .get_mut(id.0)
            .and_then(Option::as_mut)
            .ok_or(HistoryError::UnknownOperation(id.0))?;
        if operation.completion != Completion::Unknown {
            return Err(HistoryError::AlreadyCompleted(id.0));
        }
        let completion = Completion::Returned { response, at };
        validate(id.0, &operation.command, operation.invoked_at, &completion)?;
        operation.completion = completion;
        Ok(())
    }

    /// Records that `id` was answered with a definite failure: it did not take effect, and is
    /// left out of the check.
    ///
    /// # Errors
    /// [`HistoryError::UnknownOperation`] when `id` is not in the history (or failed already).
    pub fn fail(&mut self, id: OperationId) -> Result<(), HistoryError> {
        match self.operations.get_mut(id.0) {
            Some(slot @ Some(_)) => {
                *slot = None;
                Ok(())
            }
            _ => Err(HistoryError::UnknownOperation(id.0)),
        }
    }

    /// Records a whole operation at once (hand-written and generated histories).
    ///
    /// # Errors
    /// [`HistoryError`] when the answer is of the wrong kind or completes before the
    /// invocation.
    pub fn push(&mut self, operation: Operation) -> Result<OperationId, HistoryError> {
        let id = self.operations.len();
        validate(
            id,
            &operation.command,
            operation.invoked_at,
            &operation.completion,
        )?;
        self.operations.push(Some(operation));
        Ok(OperationId(id))
    }

    /// The operation `id`, unless it is unknown or was failed.
    pub fn get(&self, id: OperationId) -> Option<&Operation> {
        self.operations.get(id.0).and_then(Option::as_ref)
    }

    /// The operations the checker judges (failed ones left out), with their ids.
    pub fn operations(&self) -> impl Iterator<Item = (OperationId, &Operation)> {
        self.operations
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| slot.as_ref().map(|op| (OperationId(index), op)))
    }

    /// How many operations the checker judges.
    pub fn len(&self) -> usize {
        self.operations.iter().flatten().count()
    }

    /// Whether there is nothing to judge.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn validate(
    id: usize,
    command: &Command,
    invoked_at: u64,
    completion: &Completion,
) -> Result<(), HistoryError> {
    let Completion::Returned { response, at } = *completion else {
        return Ok(());
    };
    if !command.answered_by(&response) {
        return Err(HistoryError::ResponseMismatch {
            id,
            command: *command,
            response,
        });
    }
    if at < invoked_at {
        return Err(HistoryError::CompletedBeforeInvoked {
            id,
            invoked_at,
            completed_at: at,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_answers_and_refuses_impossible_ones() {
        let mut history = History::new();
        let write = history.invoke(1, Command::Write { key: 3, value: 9 }, 10);
        let read = history.invoke(2, Command::Read { key: 3 }, 11);
        assert_eq!(
            history.complete(read, Response::Write, 20),
            Err(HistoryError::ResponseMismatch {
                id: 1,
                command: Command::Read { key: 3 },
                response: Response::Write
            })
        );
        assert_eq!(
            history.complete(read, Response::Read(None), 5),
            Err(HistoryError::CompletedBeforeInvoked {
                id: 1,
                invoked_at: 11,
                completed_at: 5
            })
        );
        history
            .complete(read, Response::Read(Some(9)), 11)
            .expect("an answer at the invocation instant is fine");
        assert_eq!(
            history.complete(read, Response::Read(None), 30),
            Err(HistoryError::AlreadyCompleted(1))
        );
        history.fail(write).expect("the write is pending");
        assert_eq!(history.fail(write), Err(HistoryError::UnknownOperation(0)));
        assert_eq!(
            history.complete(write, Response::Write, 30),
            Err(HistoryError::UnknownOperation(0))
        );
        assert_eq!(history.len(), 1);
        assert!(history.get(write).is_none());
        let ids: Vec<OperationId> = history.operations().map(|(id, _)| id).collect();
        assert_eq!(ids, vec![read]);
    }

    #[test]
    fn an_unanswered_operation_is_unknown() {
        let mut history = History::new();
        let id = history.invoke(1, Command::Read { key: 0 }, 0);
        assert_eq!(
            history.get(id).map(|op| op.completion),
            Some(Completion::Unknown)
        );
        let pushed = history.push(Operation {
            client: 1,
            command: Command::Write { key: 0, value: 1 },
            invoked_at: 9,
            completion: Completion::Returned {
                response: Response::Read(None),
                at: 10,
            },
        });
        assert!(matches!(
            pushed,
            Err(HistoryError::ResponseMismatch { id: 1, .. })
        ));
    }
}
