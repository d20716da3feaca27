//! Node-level checks that start no node: the configuration reference page against `NodeConfig`.

mod config_docs;
