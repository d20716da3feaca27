//! Partition 0's snapshots carry the partition map in front of the application's state: a
//! 4-byte little-endian length, then the map as its entry encodes it (length 0: no map yet),
//! then the application's partition-0 snapshot, if it registered a transfer. The export takes
//! the map committed through the snapshot's index; the import publishes the map it received
//! in the [`MapTable`], and partition 0's shard keeps it with the WAL boundary the snapshot
//! installs (its floor meta), so a new or wiped node starts from it.
//!
//! [`MapTransfer`] is what a node registers with its shards: the application's transfer for
//! every other partition, and for partition 0 its transfer (if any) behind the map.

use std::io;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::map::PartitionMap;
use super::table::MapTable;
use crate::core::{LogIndex, PartitionId};
use crate::shard::{
    RangeTransfer, SYSTEM_PARTITION, SnapshotExport, SnapshotImport, SnapshotPoint, StateTransfer,
};

/// The transfer a node registers with its shards (see the module docs).
pub struct MapTransfer {
    maps: Arc<MapTable>,
    /// The application's transfer, if it registered one.
    app: Option<Arc<dyn StateTransfer>>,
}

impl MapTransfer {
    /// The transfer keeping `maps` in partition 0's snapshots, in front of `app`'s state.
    #[must_use]
    pub fn new(maps: Arc<MapTable>, app: Option<Arc<dyn StateTransfer>>) -> Self {
        Self { maps, app }
    }
}

impl StateTransfer for MapTransfer {
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
        // Called on partition 0's shard thread right after the delivery of `at.index`, and
        // that thread publishes each map it delivers: the map as of that index.
        let map = self.maps.map();
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
        Ok(Box::new(MapExport {
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
        Ok(Box::new(MapImport {
            maps: Arc::clone(&self.maps),
            head: Vec::new(),
            app,
        }))
    }

    // A split's or merge's range transfer is the application's, when it registered one (else
    // the trait's defaults: Kommander's fallback).

    fn export_range(&self, plan: &RangeTransfer) -> io::Result<Option<Box<dyn SnapshotExport>>> {
        match &self.app {
            Some(app) => app.export_range(plan),
            None => Ok(None),
        }
    }

    fn import_range_begin(
        &self,
        target: PartitionId,
        at: LogIndex,
        plan: &RangeTransfer,
    ) -> io::Result<()> {
        match &self.app {
            Some(app) => app.import_range_begin(target, at, plan),
            None => Ok(()),
        }
    }

    fn import_range_chunk(
        &self,
        target: PartitionId,
        at: LogIndex,
        plan: &RangeTransfer,
        data: &[u8],
    ) -> io::Result<()> {
        match &self.app {
            Some(app) => app.import_range_chunk(target, at, plan, data),
            None => Err(unsupported(target)),
        }
    }

    fn import_range_end(
        &self,
        target: PartitionId,
        at: LogIndex,
        plan: &RangeTransfer,
    ) -> io::Result<()> {
        match &self.app {
            Some(app) => app.import_range_end(target, at, plan),
            None => Ok(()),
        }
    }
}

fn unsupported(partition: PartitionId) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("no snapshot support for partition {partition}"),
    )
}

/// P0's export: the map, then the application's P0 state.
struct MapExport {
    head: Bytes,
    app: Option<Box<dyn SnapshotExport>>,
}

impl SnapshotExport for MapExport {
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
struct MapImport {
    maps: Arc<MapTable>,
    /// The length prefix and the map, as far as they arrived.
    head: Vec<u8>,
    app: Option<Box<dyn SnapshotImport>>,
}

impl MapImport {
    /// How many bytes the length prefix and the map take, once the prefix arrived.
    fn head_len(&self) -> Option<usize> {
        let prefix: [u8; 4] = self.head.get(..4)?.try_into().ok()?;
        Some(4 + u32::from_le_bytes(prefix) as usize)
    }
}

impl SnapshotImport for MapImport {
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
            this.maps.publish(map);
        }
        Ok(())
    }
}
