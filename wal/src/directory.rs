//! The WAL directory's names: the marker that makes a directory a WAL, the lock file, the
//! segments and temporaries, and the listing `Wal::open` and `inspect` classify them with.

use std::path::Path;

use crate::backend::{AlignedBuf, BLOCK_SIZE, FileSystem};
use crate::error::{Error, Result, io_err};
use crate::segment::parse_name;

/// Name of the file that marks a directory as a WAL.
pub const MARKER_NAME: &str = "KOMMANDER_WAL";
const MARKER_TEMP: &str = "KOMMANDER_WAL.tmp";
const MARKER_CONTENT: &[u8] = b"kommander-wal directory\nformat 1\n";
/// Name of the lock file held while a `Wal` is open.
pub(crate) const LOCK_NAME: &str = "LOCK";

/// The names in a WAL directory, sorted, as `Wal::open` (and `inspect`) classify them.
#[derive(Debug, Default)]
pub(crate) struct DirListing {
    /// The `KOMMANDER_WAL` marker exists (its content is checked by `check_is_wal`).
    pub(crate) has_marker: bool,
    /// Sequence numbers of the `<seq>.wal` segments, ascending.
    pub(crate) seqs: Vec<u64>,
    /// Files being prepared (`<seq>.tmp`, the marker's temporary), which recovery removes.
    pub(crate) temps: Vec<String>,
    /// Every other name but the lock file.
    pub(crate) foreign: Vec<String>,
}

impl DirListing {
    /// Lists `dir` (reads nothing else).
    pub(crate) fn read(dir: &Path) -> Result<Self> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_err("listing the directory", dir))? {
            let entry = entry.map_err(io_err("listing the directory", dir))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        Ok(Self::classify(names))
    }

    /// Classifies a directory's names (the simulated disk lists its durable image with this).
    pub(crate) fn classify(names: impl IntoIterator<Item = String>) -> Self {
        let mut listing = Self::default();
        for name in names {
            if name == MARKER_NAME {
                listing.has_marker = true;
            } else if let Some(seq) = parse_name(&name, "wal") {
                listing.seqs.push(seq);
            } else if parse_name(&name, "tmp").is_some() || name == MARKER_TEMP {
                listing.temps.push(name);
            } else if name != LOCK_NAME {
                listing.foreign.push(name);
            }
        }
        listing.seqs.sort_unstable();
        listing.temps.sort_unstable();
        listing.foreign.sort_unstable();
        listing
    }

    /// The check `Wal::open` makes before changing anything: a directory holding other files
    /// or segments needs a valid marker (an empty one becomes a WAL).
    ///
    /// # Errors
    /// [`Error::NotAWal`]; [`Error::Io`] reading the marker.
    pub(crate) fn check_is_wal(&self, dir: &Path) -> Result<()> {
        self.check_is_wal_with(dir, || {
            std::fs::read(dir.join(MARKER_NAME)).map_err(io_err("reading the marker", dir))
        })
    }

    /// [`DirListing::check_is_wal`] with the marker's content read by `marker` (called only
    /// if the marker exists).
    ///
    /// # Errors
    /// [`Error::NotAWal`]; what `marker` returns.
    pub(crate) fn check_is_wal_with(
        &self,
        dir: &Path,
        marker: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<()> {
        if !self.has_marker {
            if let Some(name) = self.foreign.first() {
                return Err(Error::NotAWal {
                    dir: dir.to_path_buf(),
                    reason: format!("it holds {name:?} and no {MARKER_NAME} marker"),
                });
            }
            if !self.seqs.is_empty() {
                return Err(Error::NotAWal {
                    dir: dir.to_path_buf(),
                    reason: format!("it holds segments but no {MARKER_NAME} marker"),
                });
            }
            return Ok(());
        }
        if !marker()?.starts_with(MARKER_CONTENT) {
            return Err(Error::NotAWal {
                dir: dir.to_path_buf(),
                reason: format!("its {MARKER_NAME} file is not a kommander-wal marker"),
            });
        }
        Ok(())
    }
}

/// Creates the marker (through a temporary, synced, renamed, directory synced).
pub(crate) fn write_marker(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    let temp = dir.join(MARKER_TEMP);
    let path = dir.join(MARKER_NAME);
    let file = fs
        .create_new(&temp)
        .map_err(io_err("creating the marker", &temp))?;
    let mut block = AlignedBuf::with_capacity(BLOCK_SIZE);
    block.set_len(BLOCK_SIZE);
    block.as_mut_slice().fill(0);
    block.as_mut_slice()[..MARKER_CONTENT.len()].copy_from_slice(MARKER_CONTENT);
    fs.write_at(&file, 0, block.as_slice())
        .map_err(io_err("writing the marker", &temp))?;
    fs.sync_data(&file)
        .map_err(io_err("syncing the marker", &temp))?;
    fs.rename(&temp, &path)
        .map_err(io_err("renaming the marker", &temp))?;
    fs.sync_dir(dir)
        .map_err(io_err("syncing the directory", dir))?;
    Ok(())
}
