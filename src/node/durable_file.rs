//! The node's small durable files in its data directory (`partition-map`, `identity`): each
//! replaced whole, atomically, so that a crash leaves either the old or the new contents.

use std::io::Write as _;
use std::path::Path;

/// Replaces the contents of `path` with `bytes` durably: a new file beside it, written and
/// synced, renamed over the old one, then the directory synced (so the rename survives a
/// crash). Creates the directory when it is missing.
///
/// # Errors
///
/// Creating, writing, syncing or renaming failed; the old contents (if any) are still there.
pub(crate) fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let fresh = path.with_extension("new");
    let mut file = std::fs::File::create(&fresh)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&fresh, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
