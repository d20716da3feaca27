//! Tests that run real `kommander` processes. A separate test binary: spawning forks this
//! process, and a fork briefly holds copies of every descriptor (the WAL directory locks of
//! in-process tests included), so these never share a binary with tests that open WALs.

mod process {
    mod bad_input;
    pub(crate) mod harness;
    mod keyed_load;
    mod kill9;
    mod membership;
    mod node_log;
    mod readiness;
    mod snapshot;
    mod split_merge;
    mod unknown_outcome;
}

// The `kommander` binary's commands (`node` alone, `node --join` with `cluster`, `demo`,
// `bench`, `wal inspect`).
mod cli;
