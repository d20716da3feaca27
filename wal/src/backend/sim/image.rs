//! The simulated disk's model of one directory after a prefix of the recorded steps: what is
//! durable (names and file contents) and what is still volatile on top of it (writes not yet
//! synced, directory operations not yet synced), and what of it survives a crash.
//!
//! File contents are shared copy-on-write (`Arc`), so keeping the image at the fold point next
//! to the live one, or handing recovered payloads out as `Bytes`, copies a file only when a
//! later sync changes it.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::Path;
use std::sync::Arc;

use super::{CrashMode, SECTOR_SIZE, Step};

/// A file's contents.
pub(super) type Contents = Arc<Vec<u8>>;

/// A directory operation not yet synced.
#[derive(Clone, Debug)]
enum DirOp {
    Link(String, u64),
    Rename(String, String),
    Unlink(String),
}

/// A write not yet synced: (offset, bytes).
type VolatileWrite = (u64, Arc<[u8]>);

/// The durable names and contents of a directory, and the volatile operations on top.
#[derive(Clone, Debug, Default)]
pub(super) struct DiskImage {
    /// Durable names, each to its model inode.
    pub(super) names: BTreeMap<String, u64>,
    /// Durable contents by inode (inodes no durable or volatile name can reach are dropped).
    pub(super) contents: HashMap<u64, Contents>,
    /// Volatile directory operations, in order.
    pending_dir: Vec<DirOp>,
    /// Volatile writes by inode (in inode order: torn crashes draw their sectors in it), each
    /// inode's in order.
    pending: BTreeMap<u64, Vec<VolatileWrite>>,
}

impl DiskImage {
    /// An image whose files are all durable.
    pub(super) fn durable(names: BTreeMap<String, u64>, contents: HashMap<u64, Contents>) -> Self {
        Self {
            names,
            contents,
            pending_dir: Vec::new(),
            pending: BTreeMap::new(),
        }
    }

    /// Applies one recorded step. Returns whether the durable part changed.
    pub(super) fn apply(&mut self, step: &Step) -> bool {
        match step {
            Step::Create { name, inode } => {
                self.contents.entry(*inode).or_default();
                self.pending_dir.push(DirOp::Link(name.clone(), *inode));
                false
            }
            Step::Write {
                inode,
                offset,
                data,
            } => {
                self.pending
                    .entry(*inode)
                    .or_default()
                    .push((*offset, data.clone()));
                false
            }
            Step::Sync { inode } => {
                let content = self.contents.entry(*inode).or_default();
                let Some(writes) = self.pending.remove(inode) else {
                    return false;
                };
                let content = Arc::make_mut(content);
                for (offset, data) in writes {
                    write_into(content, offset, &data);
                }
                true
            }
            Step::Rename { from, to } => {
                self.pending_dir
                    .push(DirOp::Rename(from.clone(), to.clone()));
                false
            }
            Step::Remove { name } => {
                self.pending_dir.push(DirOp::Unlink(name.clone()));
                false
            }
            Step::SyncDir => {
                let changed = !self.pending_dir.is_empty();
                for op in std::mem::take(&mut self.pending_dir) {
                    apply_dir(&mut self.names, op);
                }
                self.drop_unreachable();
                changed
            }
        }
    }

    /// Forgets the contents of inodes no durable name holds, no volatile creation names and
    /// no volatile write touches: no later step and no crash image can reach them (a step
    /// finds its file by a name the process sees, which is durable or volatile). Keeps memory
    /// proportional to the live files.
    fn drop_unreachable(&mut self) {
        let Self {
            names,
            contents,
            pending_dir,
            pending,
        } = self;
        contents.retain(|inode, _| {
            names.values().any(|i| i == inode)
                || pending.contains_key(inode)
                || pending_dir
                    .iter()
                    .any(|op| matches!(op, DirOp::Link(_, i) if i == inode))
        });
    }

    /// What survives a crash now under `mode`: an image with nothing volatile. (A crash with
    /// [`CrashMode::LoseUnsynced`] keeps exactly the durable part.)
    pub(super) fn after_crash(&self, mode: CrashMode) -> Self {
        let mut rng = SplitMix64(match mode {
            CrashMode::Torn(seed) => seed,
            CrashMode::LoseUnsynced | CrashMode::KeepUnsynced => 0,
        });
        let mut image = Self::durable(self.names.clone(), self.contents.clone());
        let kept_dir_ops = match mode {
            CrashMode::LoseUnsynced => 0,
            CrashMode::KeepUnsynced => self.pending_dir.len(),
            CrashMode::Torn(_) => (rng.next() % (self.pending_dir.len() as u64 + 1)) as usize,
        };
        for op in self.pending_dir.iter().take(kept_dir_ops) {
            apply_dir(&mut image.names, op.clone());
        }
        if mode != CrashMode::LoseUnsynced {
            for (inode, writes) in &self.pending {
                let content = Arc::make_mut(image.contents.entry(*inode).or_default());
                for (offset, data) in writes {
                    if mode == CrashMode::KeepUnsynced {
                        write_into(content, *offset, data);
                        continue;
                    }
                    for (i, sector) in data.chunks(SECTOR_SIZE).enumerate() {
                        let at = *offset + (i * SECTOR_SIZE) as u64;
                        match rng.next() % 4 {
                            0 => {}
                            1 => write_into(content, at, sector),
                            2 => write_into(content, at, &vec![0; sector.len()]),
                            _ => {
                                let garbage: Vec<u8> =
                                    (0..sector.len()).map(|_| rng.next() as u8).collect();
                                write_into(content, at, &garbage);
                            }
                        }
                    }
                }
            }
        }
        image.drop_unreachable();
        image
    }

    /// The contents of the file durably named `name` (empty for a file never synced).
    pub(super) fn file(&self, name: &str) -> Option<Contents> {
        let inode = self.names.get(name)?;
        Some(self.contents.get(inode).cloned().unwrap_or_default())
    }

    /// Writes the durable part into `target` (created if needed): one file per durable name.
    pub(super) fn write_to(&self, target: &Path) -> io::Result<()> {
        std::fs::create_dir_all(target)?;
        for (name, inode) in &self.names {
            let content = self.contents.get(inode).map(|c| c.as_slice());
            std::fs::write(target.join(name), content.unwrap_or_default())?;
        }
        Ok(())
    }
}

fn write_into(content: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = offset as usize;
    let end = start + data.len();
    if content.len() < end {
        content.resize(end, 0);
    }
    content[start..end].copy_from_slice(data);
}

fn apply_dir(names: &mut BTreeMap<String, u64>, op: DirOp) {
    match op {
        DirOp::Link(name, inode) => {
            names.insert(name, inode);
        }
        DirOp::Rename(from, to) => {
            if let Some(inode) = names.remove(&from) {
                names.insert(to, inode);
            }
        }
        DirOp::Unlink(name) => {
            names.remove(&name);
        }
    }
}

/// A small deterministic generator (SplitMix64) for torn-write choices.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
