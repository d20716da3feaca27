//! Tests only: what a piece of code logs, as text.

use std::sync::Arc;

/// Runs `f` with a `tracing` subscriber of this thread that writes plain text, and returns
/// what it logged.
pub(crate) fn logged_by(f: impl FnOnce()) -> String {
    let log = tempfile::NamedTempFile::new().expect("temp file");
    let subscriber = tracing_subscriber::fmt()
        .with_writer(Arc::new(log.reopen().expect("reopen")))
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    std::fs::read_to_string(log.path()).expect("read the log")
}
