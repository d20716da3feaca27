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
//! A durable write on the hot path ([`Backend::submit_durable_write`]) is performed when it is
//! submitted (volatile, like a write the device is busy with) and synced and completed when
//! completions are reaped, in submission order, so the recorded trace interleaves appends with
//! writes in flight as a real pipeline does, and a crash can fall between two in-flight writes
//! and their syncs. A **stalled** disk ([`SimDisk::set_stalled`]) syncs and completes none of
//! them until it is unstalled or a caller blocks on them (a slow disk).
//!
//! Writes are performed on the real files but never `fsync`ed for real (the model, not the
//! kernel, decides what survives), which keeps crash enumeration fast.
//!
//! # Crashes for a simulator
//!
//! * **Process crash**: drop the `Wal` and open it again over the same directory with the same
//!   `SimDisk`. Every performed write survives (the page cache), still volatile in the model,
//!   durable writes in flight included (they were performed when submitted); recovery reads
//!   them and makes them durable.
//! * **Power loss**: [`SimDisk::power_loss`] replaces the directory, in place, by what survives
//!   under a [`CrashMode`]; or [`SimDisk::crash_image`] writes it elsewhere, to be opened with a
//!   new `SimDisk`.
//! * **The durable truth**: [`SimDisk::durable_logs`] is what recovery of the durable image (a
//!   power loss now, [`CrashMode::LoseUnsynced`]) finds, per partition, computed in memory.
//!
//! # Long runs
//!
//! The trace keeps every step's bytes until [`SimDisk::fold_trace`] folds it into the model's
//! image of the directory, which keeps memory proportional to the files plus what is volatile.
//! Step numbers keep counting across folds.

mod durable_logs;
mod image;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{AlignedBuf, Backend, Completion, FileSystem, SegmentFile};
pub use durable_logs::{DurableEntry, DurableLog, DurableLogs};
use image::DiskImage;

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

/// How often a stalled disk held its writes in flight back, and how often a caller waited
/// them out. See [`SimDisk::set_stalled`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StallCounts {
    /// Non-blocking reaps that returned nothing because the disk was stalled with durable
    /// writes in flight: the stall delayed durability.
    pub reaps_deferred: u64,
    /// Blocking reaps while stalled, which synced and completed the writes in flight anyway
    /// (see [`SimDisk::set_stalled`]): a simulator whose loop never blocks expects none.
    pub waits_through_stall: u64,
}

/// The simulated disk: the directory as the process sees it, the model's image at the fold
/// point and now, the trace of steps since the fold, the faults to inject, the stall.
struct DiskState {
    dir: PathBuf,
    /// Names in the real directory (the page cache's view), each to its model inode.
    names: BTreeMap<String, u64>,
    next_inode: u64,
    /// The image after the first `folded_steps` steps.
    folded: DiskImage,
    folded_steps: usize,
    /// The steps after the fold point.
    trace: Vec<Step>,
    /// The image after every step: `folded` with `trace` applied.
    live: DiskImage,
    /// Bumped whenever the durable part of `live` changes.
    durable_generation: u64,
    /// The last [`SimDisk::durable_logs`] and the durable generation it was recovered from.
    durable_logs: Option<(u64, Arc<DurableLogs>)>,
    faults: FaultPlan,
    writes_seen: u64,
    syncs_seen: u64,
    stalled: bool,
    stall_counts: StallCounts,
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

    fn record(&mut self, step: Step) {
        if self.live.apply(&step) {
            self.durable_generation += 1;
        }
        self.trace.push(step);
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
        self.record(Step::Write {
            inode,
            offset,
            data: Arc::from(data),
        });
        Ok(())
    }

    fn sync(&mut self, file: &SegmentFile) -> io::Result<()> {
        let inode = self.inode_of(file)?;
        self.check_sync()?;
        self.record(Step::Sync { inode });
        Ok(())
    }

    /// Steps up to now become the fold point.
    fn fold(&mut self) {
        self.folded = self.live.clone();
        self.folded_steps += self.trace.len();
        self.trace = Vec::new();
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
            .field("steps", &(state.folded_steps + state.trace.len()))
            .field("folded_steps", &state.folded_steps)
            .field("stalled", &state.stalled)
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
        let mut names = BTreeMap::new();
        let mut contents = HashMap::new();
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
                names.insert(name, next_inode);
                contents.insert(next_inode, Arc::new(std::fs::read(entry.path())?));
                next_inode += 1;
            }
        }
        let image = DiskImage::durable(names.clone(), contents);
        Ok(Self {
            state: Arc::new(Mutex::new(DiskState {
                dir: dir.to_path_buf(),
                names,
                next_inode,
                folded: image.clone(),
                folded_steps: 0,
                trace: Vec::new(),
                live: image,
                durable_generation: 0,
                durable_logs: None,
                faults: FaultPlan::default(),
                writes_seen: 0,
                syncs_seen: 0,
                stalled: false,
                stall_counts: StallCounts::default(),
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

    /// Stalls the disk (`true`) or lets it run again (`false`): a slow disk. While stalled,
    /// the durable writes submitted on the hot path are written (volatile: a crash may keep,
    /// lose or tear them) but neither synced nor completed: a non-blocking reap returns
    /// nothing, so the log's durable LSN does not move. Once unstalled, the next reap syncs
    /// and completes them.
    ///
    /// A blocking reap (the log waiting for a pipeline slot, [`crate::Wal::wait_durable`],
    /// [`crate::Wal::sync`]) syncs and completes them anyway, as a real thread would wait the
    /// stall out (on one thread nothing else could end it); each is counted in
    /// [`StallCounts::waits_through_stall`]. The synchronous filesystem side (segment
    /// preparation, renames, directory syncs) is never stalled.
    pub fn set_stalled(&self, stalled: bool) {
        self.lock().stalled = stalled;
    }

    /// Whether the disk is stalled (see [`SimDisk::set_stalled`]).
    pub fn is_stalled(&self) -> bool {
        self.lock().stalled
    }

    /// What the stalls did so far (see [`SimDisk::set_stalled`]).
    pub fn stall_counts(&self) -> StallCounts {
        self.lock().stall_counts
    }

    /// The number of recorded steps so far, folded ones included. A crash "at step k" keeps
    /// steps `0..k`.
    pub fn step_count(&self) -> usize {
        let state = self.lock();
        state.folded_steps + state.trace.len()
    }

    /// The number of steps folded into the model's image by [`SimDisk::fold_trace`] or
    /// [`SimDisk::power_loss`]: crash images can no longer be taken before this step.
    pub fn folded_steps(&self) -> usize {
        self.lock().folded_steps
    }

    /// A copy of the recorded steps after the fold point: element `i` is step
    /// `folded_steps() + i` (the whole trace while nothing was folded).
    pub fn trace(&self) -> Vec<Step> {
        self.lock().trace.clone()
    }

    /// Folds every step recorded so far into the model's image of the directory and forgets
    /// their bytes, so that memory stays proportional to the files plus what is still
    /// volatile (the bytes of writes not yet synced are kept: a crash may keep or tear them).
    /// Crash images at step [`SimDisk::step_count`] and later stay exact; earlier ones are
    /// refused. Step numbers keep counting: the next step is still `step_count()`.
    ///
    /// Costs a copy of the model's file contents shared with the live image, copied again
    /// only when a later sync changes a file.
    pub fn fold_trace(&self) {
        self.lock().fold();
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
    /// after a crash right after the first `steps` recorded steps (at most
    /// [`SimDisk::step_count`]), under `mode`.
    ///
    /// # Errors
    /// `steps` is below [`SimDisk::folded_steps`] (`InvalidInput`); writing the image failed.
    pub fn crash_image(&self, steps: usize, mode: CrashMode, target: &Path) -> io::Result<()> {
        let state = self.lock();
        let Some(after_fold) = steps.checked_sub(state.folded_steps) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "simulated disk: no crash image at step {steps}: the steps before {} are \
                     folded",
                    state.folded_steps
                ),
            ));
        };
        let image = if after_fold >= state.trace.len() {
            state.live.after_crash(mode)
        } else {
            let mut image = state.folded.clone();
            for step in &state.trace[..after_fold] {
                image.apply(step);
            }
            image.after_crash(mode)
        };
        drop(state);
        image.write_to(target)
    }

    /// A power loss now: replaces the directory's contents, in place, by what survives under
    /// `mode` (as [`SimDisk::crash_image`] at [`SimDisk::step_count`]), which the disk then
    /// holds as durable. The steps so far are folded; counters and the fault plan keep
    /// running. Drop every `Wal` open on this disk first; then open it again with this disk.
    ///
    /// # Errors
    /// Replacing the directory's files failed (the directory is then in an unknown state).
    pub fn power_loss(&self, mode: CrashMode) -> io::Result<()> {
        let mut state = self.lock();
        let image = state.live.after_crash(mode);
        for entry in std::fs::read_dir(&state.dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                std::fs::remove_file(entry.path())?;
            }
        }
        image.write_to(&state.dir)?;
        state.names = image.names.clone();
        state.live = image;
        state.durable_generation += 1;
        state.fold();
        Ok(())
    }

    /// The durable truth: what recovery of the disk's durable image (what a power loss now,
    /// [`CrashMode::LoseUnsynced`], leaves) finds, per partition: term and vote, compaction
    /// floor, commit index and entries. Computed in memory with the checks, scan and replay
    /// `Wal::open` runs (no file is written, no `Wal` opened), from the disk alone. Recomputed
    /// only when something became durable since the last call; otherwise the same value is
    /// returned again.
    ///
    /// # Errors
    /// What `Wal::open` of that image would fail with: [`crate::Error::NotAWal`],
    /// [`crate::Error::Corrupt`], [`crate::Error::MissingSegment`].
    pub fn durable_logs(&self) -> crate::Result<Arc<DurableLogs>> {
        let mut state = self.lock();
        if let Some((generation, logs)) = &state.durable_logs
            && *generation == state.durable_generation
        {
            return Ok(logs.clone());
        }
        let logs = Arc::new(durable_logs::recover(&state.dir, &state.live)?);
        state.durable_logs = Some((state.durable_generation, logs.clone()));
        Ok(logs)
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
        state.record(Step::Create { name, inode });
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
        state.record(Step::Rename {
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
        state.record(Step::Remove { name });
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.disk.lock();
        File::open(dir)?;
        state.check_sync()?;
        state.record(Step::SyncDir);
        Ok(())
    }
}

/// A durable write submitted and not yet reaped: already performed (or failed), not yet synced.
struct Queued {
    file: SegmentFile,
    buf: AlignedBuf,
    token: u64,
    written: io::Result<()>,
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
        // Performed now, volatile until reaped: a crash before the reap may keep, lose or
        // tear it, as on a device writing while the caller goes on.
        let written = self.disk.lock().write(file, offset, buf.as_slice());
        self.queue.push_back(Queued {
            file: file.clone(),
            buf,
            token,
            written,
        });
        Ok(())
    }

    fn reap(&mut self, min_complete: usize, out: &mut Vec<Completion>) -> io::Result<usize> {
        if self.queue.is_empty() {
            return Ok(0);
        }
        let mut state = self.disk.lock();
        if state.stalled {
            if min_complete == 0 {
                state.stall_counts.reaps_deferred += 1;
                return Ok(0);
            }
            state.stall_counts.waits_through_stall += 1;
        }
        // Every queued write completes now, each synced in submission order: writes in
        // flight together land before any of their syncs, so a crash between them can keep a
        // later frame and tear an earlier one.
        let count = self.queue.len();
        for op in self.queue.drain(..) {
            let result = op.written.and_then(|()| state.sync(&op.file));
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
