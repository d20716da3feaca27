//! The pipeline of durable writes: sealing the open frame and submitting it (at most
//! `inflight_batches_max` in flight), reaping completions and advancing the durable LSN in
//! order, waiting, and poisoning the log at the first failure.

use std::sync::Arc;

use super::{InflightFrame, Wal};
use crate::Lsn;
use crate::error::{Error, Result, io_err};
use crate::format::{FRAME_HEADER_LEN, FrameStamp, seal_frame};

impl Wal {
    pub(super) fn check_poison(&self) -> Result<()> {
        match &self.poisoned {
            Some(cause) => Err(Error::Poisoned {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Runs a write-path step; any error poisons the log.
    pub(super) fn poison_on_error<T>(&mut self, result: Result<T>) -> Result<T> {
        if let Err(error) = &result
            && self.poisoned.is_none()
        {
            tracing::error!(%error, "WAL poisoned");
            self.poisoned = Some(Arc::from(error.to_string()));
        }
        result
    }

    /// Seals the current frame and hands it to the backend, first waiting for a slot if
    /// `inflight_batches_max` frames are in flight.
    pub(super) fn seal_and_submit(&mut self) -> Result<()> {
        let Some(mut frame) = self.current.take() else {
            return Ok(());
        };
        if frame.records == 0 {
            self.spare.push(frame.buf);
            return Ok(());
        }
        let (seq, epoch, file) = match self.segments.back() {
            Some(active) => (active.seq, active.epoch, active.file.clone()),
            None => {
                return Err(Error::io(
                    "sealing a frame",
                    &self.dir,
                    std::io::Error::other("no active segment"),
                ));
            }
        };
        let stamp = FrameStamp {
            first_lsn: frame.first_lsn,
            record_count: frame.records,
            segment_seq: seq,
            epoch,
            prev_payload_crc: self.prev_payload_crc,
            offset: frame.offset,
            timestamp_ns: self.stamping().now_unix_ns(),
            inflight_frames_max: self.config.inflight_batches_max as u8,
        };
        self.prev_payload_crc = seal_frame(frame.buf.full_mut(), frame.payload_len, &stamp);
        frame.buf.set_len(FRAME_HEADER_LEN + frame.payload_len);
        frame.buf.pad_to_block();
        assert_eq!(self.cursor, frame.offset, "frames are written in order");
        self.cursor += frame.buf.len() as u64;
        let end_lsn = frame.first_lsn + u64::from(frame.records);
        while self.backend.in_flight() >= self.config.inflight_batches_max {
            self.reap(1)?;
        }
        let token = self.next_token;
        self.next_token += 1;
        self.backend
            .submit_durable_write(&file, frame.offset, frame.buf, token)
            .map_err(io_err("submitting a durable write", file.path()))?;
        self.inflight.push_back(InflightFrame {
            token,
            end_lsn,
            done: false,
        });
        Ok(())
    }

    /// Reaps completions (waiting for `min`) and advances the durable LSN in order.
    pub(super) fn reap(&mut self, min: usize) -> Result<()> {
        let mut completions = std::mem::take(&mut self.completions);
        let reaped = self
            .backend
            .reap(min, &mut completions)
            .map_err(io_err("reaping completions", &self.dir));
        let mut failure = None;
        for completion in completions.drain(..) {
            self.spare.push(completion.buf);
            if let Err(error) = completion.result {
                failure.get_or_insert(error);
                continue;
            }
            let Some(front) = self.inflight.front() else {
                continue;
            };
            let Some(slot) = completion
                .token
                .checked_sub(front.token)
                .and_then(|i| self.inflight.get_mut(i as usize))
            else {
                continue;
            };
            slot.done = true;
        }
        self.completions = completions;
        reaped?;
        if let Some(error) = failure {
            return Err(Error::io("writing a frame durably", &self.dir, error));
        }
        while self.inflight.front().is_some_and(|f| f.done) {
            if let Some(frame) = self.inflight.pop_front() {
                self.durable_lsn = frame.end_lsn;
            }
        }
        Ok(())
    }

    /// Submits the current frame if a pipeline slot is free and a flush was asked for.
    fn pump(&mut self) -> Result<()> {
        if self.flush_wanted
            && self.current.is_some()
            && self.backend.in_flight() < self.config.inflight_batches_max
        {
            self.seal_and_submit()?;
        }
        if self.current.is_none() {
            self.flush_wanted = false;
        }
        Ok(())
    }

    /// Asks for the current frame to be written: now if a pipeline slot is free, otherwise as
    /// soon as one frees (during [`Wal::poll_durable`] / [`Wal::wait_durable`]); meanwhile the
    /// frame keeps filling. Never waits.
    ///
    /// # Errors
    /// [`Error::Poisoned`]; an I/O error submitting (which poisons).
    ///
    /// # Durability
    /// None on return; see [`Wal::poll_durable`].
    pub fn submit(&mut self) -> Result<()> {
        self.check_poison()?;
        self.flush_wanted = true;
        let result = self.pump();
        self.poison_on_error(result)
    }

    /// Collects finished writes without waiting, submits a pending frame if a slot freed, and
    /// returns the durable LSN.
    ///
    /// # Errors
    /// [`Error::Poisoned`]; a failed write or sync (which poisons: the frames it carried and
    /// every later one are never acknowledged).
    ///
    /// # Durability
    /// Every record appended with an LSN below the returned one is durable.
    pub fn poll_durable(&mut self) -> Result<Lsn> {
        self.check_poison()?;
        let mut result = self.reap(0);
        if result.is_ok() {
            result = self.pump();
        }
        self.poison_on_error(result)?;
        Ok(Lsn(self.durable_lsn))
    }

    /// Submits what is needed and waits until `lsn` is durable (or everything appended so
    /// far, if `lsn` is beyond it). Returns the durable LSN.
    ///
    /// # Errors
    /// As [`Wal::poll_durable`].
    ///
    /// # Durability
    /// Every record below the returned LSN (which is at least `min(lsn, next_lsn)`) is durable.
    pub fn wait_durable(&mut self, lsn: Lsn) -> Result<Lsn> {
        self.check_poison()?;
        let target = lsn.0.min(self.next_lsn);
        let result = self.wait_for(target);
        self.poison_on_error(result)?;
        Ok(Lsn(self.durable_lsn))
    }

    fn wait_for(&mut self, target: u64) -> Result<()> {
        while self.durable_lsn < target {
            if self.current.as_ref().is_some_and(|f| f.first_lsn < target) {
                self.flush_wanted = true;
                self.pump()?;
            }
            if self.backend.in_flight() == 0 {
                // Nothing in flight and the target not reached: the frame is still open;
                // submit it now.
                self.seal_and_submit()?;
                if self.backend.in_flight() == 0 {
                    return Err(Error::io(
                        "waiting for durability",
                        &self.dir,
                        std::io::Error::other("a durable write never completed"),
                    ));
                }
            }
            self.reap(1)?;
        }
        Ok(())
    }

    /// Submits everything appended and waits until it is durable (a convenience for tests and
    /// simple callers). Returns the durable LSN.
    ///
    /// # Errors
    /// As [`Wal::poll_durable`].
    ///
    /// # Durability
    /// Everything appended before the call is durable when it returns `Ok`.
    pub fn sync(&mut self) -> Result<Lsn> {
        self.wait_durable(Lsn(u64::MAX))
    }
}
