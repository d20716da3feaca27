//! The simulated backend: real files in a directory (so memory-mapped reads work), with every
//! I/O step recorded, faults injected on demand, and **crash images**: what the directory could
//! hold after a power cut at any recorded step.
//!
//! # The disk model
//!
//! * A write is volatile until a data sync of its file; a sync makes every earlier write to
//!   that file durable.
//! * Creations, renames and removals are volatile until a sync of the directory. At a crash, a
//!   prefix of the volatile directory operations (in order) survives.
//! * At a crash, each volatile write is lost, kept, or torn, as the [`CrashMode`] says. Torn
//!   means each 512-byte sector of it independently kept, lost, zeroed or garbage.
//!
//! Durable writes on the hot path are queued by [`Backend::submit_durable_write`] and executed
//! when completions are reaped: every queued write, then every sync, so the recorded trace
//! interleaves appends with writes in flight as a real pipeline does, and a crash can fall
//! between two in-flight writes and their syncs.
//!
//! Writes are performed on the real files but never `fsync`ed for real (the model, not the
//! kernel, decides what survives), which keeps crash enumeration fast.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{AlignedBuf, Backend, Completion, FileSystem, SegmentFile};

/// The sector size of the crash model: writes tear at this granularity.
pub const SECTOR_SIZE: usize = 512;

/// Faults to inject. Counters are 0-based and count every write (resp. sync) the simulated
/// disk performs, from the filesystem side and from the hot path, since the disk was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// Fail the write with this ordinal with `EIO` (nothing of it reaches the file).
    pub fail_write_nth: Option<u64>,
    /// Fail the sync (data or directory) with this ordinal with `EIO` (nothing becomes durable).
    pub fail_sync_nth: Option<u64>,
}

/// What happens to volatile writes at a simulated crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// Every volatile write is lost; every volatile directory operation too.
    LoseUnsynced,
    /// Every volatile write and directory operation survives (as if flushed just in time).
    KeepUnsynced,
    /// Each 512-byte sector of each volatile write is independently kept, lost, zeroed or
    /// filled with garbage, and a random prefix of the volatile directory operations survives;
    /// all decided by this seed.
    Torn(u64),
}

/// One recorded I/O step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A file was created (name in the directory, inode number of the model).
    Create {
        /// File name.
        name: String,
        /// Model inode.
        inode: u64,
    },
    /// Bytes were written (volatile).
    Write {
        /// Model inode.
        inode: u64,
        /// File offset.
        offset: u64,
        /// The bytes.
        data: Arc<[u8]>,
    },
    /// A file's writes became durable.
    Sync {
        /// Model inode.
        inode: u64,
    },
    /// A rename (volatile until [`Step::SyncDir`]).
    Rename {
        /// Old name.
        from: String,
        /// New name.
        to: String,
    },
    /// A removal (volatile until [`Step::SyncDir`]).
    Remove {
        /// File name.
        name: String,
    },
    /// The directory's entries became durable.
    SyncDir,
}

#[derive(Clone, Debug)]
enum DirOp {
    Link(String, u64),
    Rename(String, String),
    Unlink(String),
}

/// The simulated disk: its files (by inode), the trace of I/O steps, and the faults to inject.
struct DiskState {
    dir: PathBuf,
    base_names: BTreeMap<String, u64>,
    base_contents: HashMap<u64, Vec<u8>>,
    names: BTreeMap<String, u64>,
    next_inode: u64,
    trace: Vec<Step>,
    faults: FaultPlan,
    writes_seen: u64,
    syncs_seen: u64,
}

impl DiskState {
    fn name_of(&self, path: &Path) -> io::Result<String> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| io::Error::other(format!("simulated disk: bad path {path:?}")))?;
        Ok(name.to_owned())
    }

    fn inode_of(&mut self, file: &SegmentFile) -> io::Result<u64> {
        let name = self.name_of(file.path())?;
        self.names
            .get(&name)
            .copied()
            .ok_or_else(|| io::Error::other(format!("simulated disk: {name} is not a known file")))
    }

    fn check_write(&mut self) -> io::Result<()> {
        let nth = self.writes_seen;
        self.writes_seen += 1;
        if self.faults.fail_write_nth == Some(nth) {
            return Err(injected("write", nth));
        }
        Ok(())
    }

    fn check_sync(&mut self) -> io::Result<()> {
        let nth = self.syncs_seen;
        self.syncs_seen += 1;
        if self.faults.fail_sync_nth == Some(nth) {
            return Err(injected("sync", nth));
        }
        Ok(())
    }

    fn write(&mut self, file: &SegmentFile, offset: u64, data: &[u8]) -> io::Result<()> {
        let inode = self.inode_of(file)?;
        self.check_write()?;
        file.file().write_all_at(data, offset)?;
        self.trace.push(Step::Write {
            inode,
            offset,
            data: Arc::from(data),
        });
        Ok(())
    }

    fn sync(&mut self, file: &SegmentFile) -> io::Result<()> {
        let inode = self.inode_of(file)?;
        self.check_sync()?;
        self.trace.push(Step::Sync { inode });
        Ok(())
    }
}

fn injected(what: &str, nth: u64) -> io::Error {
    io::Error::other(format!(
        "simulated disk: injected EIO on {what} #{nth} (os error 5)"
    ))
}

/// A simulated disk over one real directory. Cheap to clone (shared state); put a clone in
/// [`super::BackendChoice::Simulated`] and keep one to inspect the trace and make crash images.
#[derive(Clone)]
pub struct SimDisk {
    state: Arc<Mutex<DiskState>>,
}

impl fmt::Debug for SimDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("SimDisk")
            .field("dir", &state.dir)
            .field("steps", &state.trace.len())
            .finish()
    }
}

impl SimDisk {
    /// A simulated disk for `dir`. Files already in `dir` are taken as durable, with their
    /// current contents (so a crash image can be opened with a new `SimDisk`).
    ///
    /// # Errors
    /// Reading the existing files failed.
    pub fn new(dir: &Path) -> io::Result<Self> {
        let mut base_names = BTreeMap::new();
        let mut base_contents = HashMap::new();
        let mut next_inode = 0;
        if dir.exists() {
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                if !entry.file_type()?.is_file() {
                    continue;
                }
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                base_names.insert(name, next_inode);
                base_contents.insert(next_inode, std::fs::read(entry.path())?);
                next_inode += 1;
            }
        }
        Ok(Self {
            state: Arc::new(Mutex::new(DiskState {
                dir: dir.to_path_buf(),
                names: base_names.clone(),
                base_names,
                base_contents,
                next_inode,
                trace: Vec::new(),
                faults: FaultPlan::default(),
                writes_seen: 0,
                syncs_seen: 0,
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        // A panic while holding the lock leaves the state consistent enough for inspection.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the fault plan (counters keep running).
    pub fn set_faults(&self, faults: FaultPlan) {
        self.lock().faults = faults;
    }

    /// Writes (resp. syncs) performed or attempted so far: the ordinal the next one will get.
    pub fn io_counts(&self) -> (u64, u64) {
        let state = self.lock();
        (state.writes_seen, state.syncs_seen)
    }

    /// The number of recorded steps so far. A crash "at step k" keeps steps `0..k`.
    pub fn step_count(&self) -> usize {
        self.lock().trace.len()
    }

    /// A copy of the recorded steps.
    pub fn trace(&self) -> Vec<Step> {
        self.lock().trace.clone()
    }

    /// The simulated backend on this disk.
    pub fn backend(&self, queue_depth_max: usize) -> SimBackend {
        SimBackend {
            disk: self.clone(),
            queue: VecDeque::new(),
            queue_depth_max: queue_depth_max.max(1),
        }
    }

    /// Writes into `target` (which must not exist or be empty) what the directory could hold
    /// after a crash right after the first `steps` recorded steps, under `mode`.
    ///
    /// # Errors
    /// Writing the image failed.
    pub fn crash_image(&self, steps: usize, mode: CrashMode, target: &Path) -> io::Result<()> {
        let state = self.lock();
        let steps = steps.min(state.trace.len());
        let mut rng = SplitMix64(match mode {
            CrashMode::Torn(seed) => seed,
            _ => 0,
        });
        let mut durable_names = state.base_names.clone();
        let mut pending_dir: Vec<DirOp> = Vec::new();
        let mut durable: HashMap<u64, Vec<u8>> = state.base_contents.clone();
        let mut pending: HashMap<u64, Vec<VolatileWrite>> = HashMap::new();
        for step in &state.trace[..steps] {
            match step {
                Step::Create { name, inode } => {
                    durable.entry(*inode).or_default();
                    pending_dir.push(DirOp::Link(name.clone(), *inode));
                }
                Step::Write {
                    inode,
                    offset,
                    data,
                } => pending
                    .entry(*inode)
                    .or_default()
                    .push((*offset, data.clone())),
                Step::Sync { inode } => {
                    let content = durable.entry(*inode).or_default();
                    for (offset, data) in pending.remove(inode).unwrap_or_default() {
                        apply(content, offset, &data);
                    }
                }
                Step::Rename { from, to } => {
                    pending_dir.push(DirOp::Rename(from.clone(), to.clone()));
                }
                Step::Remove { name } => pending_dir.push(DirOp::Unlink(name.clone())),
                Step::SyncDir => {
                    for op in pending_dir.drain(..) {
                        apply_dir(&mut durable_names, op);
                    }
                }
            }
        }
        let kept_dir_ops = match mode {
            CrashMode::LoseUnsynced => 0,
            CrashMode::KeepUnsynced => pending_dir.len(),
            CrashMode::Torn(_) => (rng.next() % (pending_dir.len() as u64 + 1)) as usize,
        };
        for op in pending_dir.into_iter().take(kept_dir_ops) {
            apply_dir(&mut durable_names, op);
        }
        let mut inodes: Vec<_> = pending.keys().copied().collect();
        inodes.sort_unstable();
        for inode in inodes {
            let content = durable.entry(inode).or_default();
            for (offset, data) in &pending[&inode] {
                match mode {
                    CrashMode::LoseUnsynced => {}
                    CrashMode::KeepUnsynced => apply(content, *offset, data),
                    CrashMode::Torn(_) => {
                        for (i, sector) in data.chunks(SECTOR_SIZE).enumerate() {
                            let at = *offset + (i * SECTOR_SIZE) as u64;
                            match rng.next() % 4 {
                                0 => {}
                                1 => apply(content, at, sector),
                                2 => apply(content, at, &vec![0; sector.len()]),
                                _ => {
                                    let garbage: Vec<u8> =
                                        (0..sector.len()).map(|_| rng.next() as u8).collect();
                                    apply(content, at, &garbage);
                                }
                            }
                        }
                    }
                }
            }
        }
        std::fs::create_dir_all(target)?;
        for (name, inode) in &durable_names {
            let content = durable.get(inode).map(Vec::as_slice).unwrap_or_default();
            std::fs::write(target.join(name), content)?;
        }
        Ok(())
    }
}

/// A write not yet synced: (offset, bytes).
type VolatileWrite = (u64, Arc<[u8]>);

fn apply(content: &mut Vec<u8>, offset: u64, data: &[u8]) {
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

/// The filesystem side of the simulated disk.
#[derive(Clone, Debug)]
pub struct SimFileSystem {
    disk: SimDisk,
}

impl FileSystem for SimFileSystem {
    fn create_new(&self, path: &Path) -> io::Result<SegmentFile> {
        let mut state = self.disk.lock();
        let name = state.name_of(path)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        let inode = state.next_inode;
        state.next_inode += 1;
        state.names.insert(name.clone(), inode);
        state.trace.push(Step::Create { name, inode });
        Ok(SegmentFile::new(file, path.to_path_buf()))
    }

    fn open(&self, path: &Path) -> io::Result<SegmentFile> {
        let state = self.disk.lock();
        let name = state.name_of(path)?;
        if !state.names.contains_key(&name) {
            return Err(io::Error::other(format!(
                "simulated disk: {name} was not created through the simulated disk"
            )));
        }
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(SegmentFile::new(file, path.to_path_buf()))
    }

    fn write_at(&self, file: &SegmentFile, offset: u64, data: &[u8]) -> io::Result<()> {
        self.disk.lock().write(file, offset, data)
    }

    fn sync_data(&self, file: &SegmentFile) -> io::Result<()> {
        self.disk.lock().sync(file)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.disk.lock();
        let from_name = state.name_of(from)?;
        let to_name = state.name_of(to)?;
        std::fs::rename(from, to)?;
        if let Some(inode) = state.names.remove(&from_name) {
            state.names.insert(to_name.clone(), inode);
        }
        state.trace.push(Step::Rename {
            from: from_name,
            to: to_name,
        });
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.disk.lock();
        let name = state.name_of(path)?;
        std::fs::remove_file(path)?;
        state.names.remove(&name);
        state.trace.push(Step::Remove { name });
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.disk.lock();
        File::open(dir)?;
        state.check_sync()?;
        state.trace.push(Step::SyncDir);
        Ok(())
    }
}

struct Queued {
    file: SegmentFile,
    offset: u64,
    buf: AlignedBuf,
    token: u64,
}

/// The hot path of the simulated disk (see the module docs).
pub struct SimBackend {
    disk: SimDisk,
    queue: VecDeque<Queued>,
    queue_depth_max: usize,
}

impl fmt::Debug for SimBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimBackend")
            .field("in_flight", &self.queue.len())
            .finish()
    }
}

impl Backend for SimBackend {
    fn name(&self) -> &'static str {
        "simulated"
    }

    fn filesystem(&self) -> Arc<dyn FileSystem> {
        Arc::new(SimFileSystem {
            disk: self.disk.clone(),
        })
    }

    fn queue_depth_max(&self) -> usize {
        self.queue_depth_max
    }

    fn submit_durable_write(
        &mut self,
        file: &SegmentFile,
        offset: u64,
        buf: AlignedBuf,
        token: u64,
    ) -> io::Result<()> {
        if self.queue.len() >= self.queue_depth_max {
            return Err(io::Error::other("simulated backend: queue depth exceeded"));
        }
        self.queue.push_back(Queued {
            file: file.clone(),
            offset,
            buf,
            token,
        });
        Ok(())
    }

    fn reap(&mut self, _min_complete: usize, out: &mut Vec<Completion>) -> io::Result<usize> {
        // Every queued write runs now, all writes first and then the syncs, as writes in
        // flight together on a real device may land before any of their syncs: a crash
        // between them can keep a later frame and tear an earlier one.
        let ops: Vec<Queued> = self.queue.drain(..).collect();
        let mut state = self.disk.lock();
        let mut results: Vec<io::Result<()>> = ops
            .iter()
            .map(|op| state.write(&op.file, op.offset, op.buf.as_slice()))
            .collect();
        for (op, result) in ops.iter().zip(results.iter_mut()) {
            if result.is_ok() {
                *result = state.sync(&op.file);
            }
        }
        drop(state);
        let count = ops.len();
        for (op, result) in ops.into_iter().zip(results) {
            out.push(Completion {
                token: op.token,
                result,
                buf: op.buf,
            });
        }
        Ok(count)
    }

    fn in_flight(&self) -> usize {
        self.queue.len()
    }
}
