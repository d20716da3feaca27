//! What stops a run before its verdict: a setup step that failed, a node that did not start.

use thiserror::Error;

/// A harness failure (not a verdict about the store).
#[derive(Debug, Error)]
pub(crate) enum Error {
    /// A command of the setup, a fault or its healing failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status and stderr, or why it could not run.
        detail: String,
    },
    /// A file of the run's directory could not be written or read.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The harness cannot run here (not root, the store's binary missing, a node not ready).
    #[error("{0}")]
    Refused(String),
}

impl Error {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}
