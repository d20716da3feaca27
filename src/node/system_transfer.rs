//! Snapshots as the shards see them: the application's own ([`StateTransfer`]), with the
//! system partition's state in front of P0's. A P0 snapshot is the partition map (a 4-byte
//! little-endian length, then the map as its system entry encodes it; length 0: no map yet)
//! followed by the application's P0 snapshot, if it registered a transfer. A node that
//! installs it makes the map durable and applies it, so a new or wiped node initialises from
//! it.

use std::io;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::core::PartitionId;
use crate::node::partition_map::PartitionMap;
use crate::node::system::{SYSTEM_PARTITION, SystemState};
use crate::shard::{SnapshotExport, SnapshotImport, SnapshotPoint, StateTransfer};

/// The transfer the node registers with its shards.
pub(crate) struct SystemTransfer {
    pub(crate) system: Arc<SystemState>,
    /// The application's transfer, if it registered one.
    pub(crate) app: Option<Arc<dyn StateTransfer>>,
}

impl StateTransfer for SystemTransfer {
    fn supports(&self, partition: PartitionId) -> bool {
        partition == SYSTEM_PARTITION || self.app.as_ref().is_some_and(|a| a.supports(partition))
    }

    fn export(
        &self,
        partition: PartitionId,
        at: SnapshotPoint,
    ) -> io::Result<Box<dyn SnapshotExport>> {
        let app = self.app.as_ref().filter(|app| app.supports(partition));
        if partition != SYSTEM_PARTITION {
            return app
                .ok_or_else(|| unsupported(partition))?
                .export(partition, at);
        }
        let app = app.map(|app| app.export(partition, at)).transpose()?;
        // Called on the shard thread right after the delivery of `at.index`: the newest map
        // handed over is the map as of that index.
        let map = self.system.newest_map();
        let encoded = if map.version == 0 {
            Vec::new()
        } else {
            map.encode()
        };
        let length = u32::try_from(encoded.len())
            .map_err(|_| io::Error::other("the partition map exceeds 4 GiB"))?;
        let mut head = BytesMut::with_capacity(4 + encoded.len());
        head.put_u32_le(length);
        head.put_slice(&encoded);
        Ok(Box::new(SystemExport {
            head: head.freeze(),
            app,
        }))
    }

    fn import(
        &self,
        partition: PartitionId,
        at: SnapshotPoint,
    ) -> io::Result<Box<dyn SnapshotImport>> {
        let app = self.app.as_ref().filter(|app| app.supports(partition));
        if partition != SYSTEM_PARTITION {
            return app
                .ok_or_else(|| unsupported(partition))?
                .import(partition, at);
        }
        let app = app.map(|app| app.import(partition, at)).transpose()?;
        Ok(Box::new(SystemImport {
            system: Arc::clone(&self.system),
            head: Vec::new(),
            app,
        }))
    }
}

fn unsupported(partition: PartitionId) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("no snapshot support for partition {partition}"),
    )
}

/// P0's export: the map, then the application's P0 state.
struct SystemExport {
    head: Bytes,
    app: Option<Box<dyn SnapshotExport>>,
}

impl SnapshotExport for SystemExport {
    fn read_chunk(&mut self, max: usize) -> io::Result<Option<Bytes>> {
        if !self.head.is_empty() {
            let len = max.max(1).min(self.head.len());
            return Ok(Some(self.head.split_to(len)));
        }
        match self.app.as_mut() {
            Some(app) => app.read_chunk(max),
            None => Ok(None),
        }
    }
}

/// P0's import: the map's bytes are gathered, the rest goes to the application's import.
struct SystemImport {
    system: Arc<SystemState>,
    /// The length prefix and the map, as far as they arrived.
    head: Vec<u8>,
    app: Option<Box<dyn SnapshotImport>>,
}

impl SystemImport {
    /// How many bytes the length prefix and the map take, once the prefix arrived.
    fn head_len(&self) -> Option<usize> {
        let prefix: [u8; 4] = self.head.get(..4)?.try_into().ok()?;
        Some(4 + u32::from_le_bytes(prefix) as usize)
    }
}

impl SnapshotImport for SystemImport {
    fn write_chunk(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let wanted = self.head_len().unwrap_or(4);
            if self.head.len() >= wanted {
                break;
            }
            let take = (wanted - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        if data.is_empty() {
            return Ok(());
        }
        match self.app.as_mut() {
            Some(app) => app.write_chunk(data),
            None => Err(io::Error::other(
                "the P0 snapshot carries application state and this node registered no \
                 StateTransfer",
            )),
        }
    }

    fn finish(self: Box<Self>) -> io::Result<()> {
        let this = *self;
        if this.head_len() != Some(this.head.len()) {
            return Err(io::Error::other(
                "the P0 snapshot ends inside its partition map",
            ));
        }
        let map = (this.head.len() > 4)
            .then(|| PartitionMap::decode(&this.head[4..]))
            .transpose()
            .map_err(|e| io::Error::other(format!("the P0 snapshot's partition map: {e}")))?;
        if let Some(app) = this.app {
            app.finish()?;
        }
        if let Some(map) = map {
            this.system.commit(map)?;
        }
        Ok(())
    }
}
