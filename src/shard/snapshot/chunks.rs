//! The checksummed ends of a transfer, run on the pump so that no byte of a snapshot is hashed
//! on a shard thread: a leader's [`ChunkSource`] reads the export and gives each chunk its
//! CRC32C and the SHA-256 of the whole at the end; a follower's [`ChunkSink`] checks each chunk's
//! CRC32C, folds it into its own SHA-256 and writes it to the import.

use std::io;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::shard::state_transfer::{SnapshotExport, SnapshotImport};

/// What a read produced: the next chunk, or the end with the digest of every chunk before it.
pub(crate) enum Chunk {
    Data { data: Bytes, crc: u32 },
    End { digest: [u8; 32] },
}

/// A leader's export, with the SHA-256 of what it has read so far.
pub(crate) struct ChunkSource {
    export: Box<dyn SnapshotExport>,
    hasher: Sha256,
}

impl ChunkSource {
    pub(crate) fn new(export: Box<dyn SnapshotExport>) -> Self {
        Self {
            export,
            hasher: Sha256::new(),
        }
    }

    /// Reads the next chunk, of at most `max` bytes.
    ///
    /// # Errors
    ///
    /// The export's error, or an export that broke its contract (an empty chunk before the
    /// end, a chunk longer than `max`).
    pub(crate) fn read(&mut self, max: usize) -> io::Result<Chunk> {
        match self.export.read_chunk(max)? {
            Some(data) if data.is_empty() || data.len() > max => Err(io::Error::other(format!(
                "the export returned a chunk of {} bytes (1 to {max} expected)",
                data.len()
            ))),
            Some(data) => {
                self.hasher.update(&data);
                Ok(Chunk::Data {
                    crc: crc32c::crc32c(&data),
                    data,
                })
            }
            None => Ok(Chunk::End {
                digest: std::mem::take(&mut self.hasher).finalize().into(),
            }),
        }
    }
}

/// A follower's import, with the SHA-256 of what it has written so far.
pub(crate) struct ChunkSink {
    import: Box<dyn SnapshotImport>,
    hasher: Sha256,
}

impl ChunkSink {
    pub(crate) fn new(import: Box<dyn SnapshotImport>) -> Self {
        Self {
            import,
            hasher: Sha256::new(),
        }
    }

    /// Writes the next chunk to the import once it checked against its CRC32C.
    ///
    /// # Errors
    ///
    /// `InvalidData` when the CRC32C does not match (nothing is written); the import's error.
    pub(crate) fn write(&mut self, data: &[u8], crc: u32) -> io::Result<()> {
        if crc32c::crc32c(data) != crc {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a chunk whose CRC32C does not match",
            ));
        }
        self.hasher.update(data);
        self.import.write_chunk(data)
    }

    /// The import, ready to finish, when the SHA-256 of everything written is `digest`.
    ///
    /// # Errors
    ///
    /// Why the transfer ends: the digest does not match (the import is dropped: abandoned).
    pub(crate) fn into_import(
        self,
        digest: &[u8; 32],
    ) -> Result<Box<dyn SnapshotImport>, &'static str> {
        let ours: [u8; 32] = self.hasher.finalize().into();
        if &ours != digest {
            return Err("the snapshot's SHA-256 does not match");
        }
        Ok(self.import)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects what it is given.
    struct Kept(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl SnapshotImport for Kept {
        fn write_chunk(&mut self, data: &[u8]) -> io::Result<()> {
            self.0.lock().expect("kept").extend_from_slice(data);
            Ok(())
        }
        fn finish(self: Box<Self>) -> io::Result<()> {
            Ok(())
        }
    }

    fn drain(source: &mut ChunkSource, max: usize) -> (Vec<(Bytes, u32)>, [u8; 32]) {
        let mut chunks = Vec::new();
        loop {
            match source.read(max).expect("read") {
                Chunk::Data { data, crc } => chunks.push((data, crc)),
                Chunk::End { digest } => return (chunks, digest),
            }
        }
    }

    #[test]
    fn what_a_source_reads_a_sink_accepts_and_nothing_else() {
        let state = Bytes::from((0..10_000u32).map(|i| i as u8).collect::<Vec<_>>());
        let (chunks, digest) = drain(&mut ChunkSource::new(Box::new(state.clone())), 4096);
        assert_eq!(chunks.len(), 3);
        let expected: [u8; 32] = Sha256::digest(&state).into();
        assert_eq!(digest, expected);

        let kept = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut sink = ChunkSink::new(Box::new(Kept(kept.clone())));
        for (data, crc) in &chunks {
            sink.write(data, *crc).expect("a chunk that checks out");
        }
        assert!(sink.into_import(&digest).is_ok());
        assert_eq!(&kept.lock().expect("kept")[..], &state[..]);

        // A damaged chunk is refused before the import sees it.
        let kept = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut sink = ChunkSink::new(Box::new(Kept(kept.clone())));
        let (data, crc) = &chunks[0];
        let mut damaged = data.to_vec();
        damaged[7] ^= 1;
        let error = sink.write(&damaged, *crc).expect_err("damaged");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(kept.lock().expect("kept").is_empty());

        // Chunks that each check out but not the whole: one missing.
        let mut sink = ChunkSink::new(Box::new(Kept(kept)));
        for (data, crc) in &chunks[1..] {
            sink.write(data, *crc).expect("checks out");
        }
        assert_eq!(
            sink.into_import(&digest).err(),
            Some("the snapshot's SHA-256 does not match")
        );
    }

    /// An export returning an empty chunk or more than asked.
    struct Broken(usize);

    impl SnapshotExport for Broken {
        fn read_chunk(&mut self, _: usize) -> io::Result<Option<Bytes>> {
            Ok(Some(Bytes::from(vec![0; self.0])))
        }
    }

    #[test]
    fn an_export_that_breaks_its_contract_fails_the_read() {
        for len in [0, 65] {
            let mut source = ChunkSource::new(Box::new(Broken(len)));
            assert!(source.read(64).is_err(), "a chunk of {len} bytes");
        }
    }
}
