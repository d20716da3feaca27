//! The partition map's fields on the client protocol: a range as `Partitions` answers it
//! ([`PartitionInfo`]), a create's routing and range, a split's plan, and their codes. Only
//! encoding and decoding; what a node does with the requests is the server's business.

use bytes::{BufMut, BytesMut};

use crate::core::PartitionId;
use crate::shard::partitions::{
    CreatePartition, PartitionMap, PartitionRange, RangeState, RoutingMode, SplitPlan,
};
use crate::transport::codec::{Cursor, WireError};

/// One range of the partition map as a node reports it on the client protocol
/// ([`ClientResponse::Partitions`](super::ClientResponse::Partitions)): what routing needs
/// and the state of a split or merge, without the first configuration a created range
/// carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The partition.
    pub partition: PartitionId,
    /// Its lifecycle state.
    pub state: RangeState,
    /// How keys reach it.
    pub routing: RoutingMode,
    /// First hash owned (inclusive).
    pub start: i32,
    /// Last hash owned (inclusive).
    pub end: i32,
    /// Its generation (what a fenced write names).
    pub generation: u64,
    /// While a split or merge fills it: the partition it imports from.
    pub importing_from: Option<PartitionId>,
    /// While a split or merge empties it: the partition its data moves to.
    pub exporting_to: Option<PartitionId>,
}

impl From<&PartitionRange> for PartitionInfo {
    fn from(range: &PartitionRange) -> Self {
        Self {
            partition: range.partition_id,
            state: range.state,
            routing: range.routing,
            start: range.start,
            end: range.end,
            generation: range.generation,
            importing_from: range.importing_from,
            exporting_to: range.exporting_to,
        }
    }
}

impl PartitionInfo {
    /// Every range of `map`, in the map's order (by partition id).
    #[must_use]
    pub fn of_map(map: &PartitionMap) -> Vec<Self> {
        map.partitions.iter().map(Self::from).collect()
    }
}

/// Bytes of one encoded [`PartitionInfo`]: partition, state, routing, start, end,
/// generation, importing_from, exporting_to.
pub(super) const PARTITION_INFO_BYTES: usize = 4 + 1 + 1 + 4 + 4 + 8 + 4 + 4;

pub(super) fn put_partition_info(out: &mut BytesMut, info: &PartitionInfo) {
    out.put_u32_le(info.partition.get());
    out.put_u8(state_code(info.state));
    out.put_u8(routing_code(info.routing));
    out.put_i32_le(info.start);
    out.put_i32_le(info.end);
    out.put_u64_le(info.generation);
    out.put_u32_le(info.importing_from.map_or(0, PartitionId::get));
    out.put_u32_le(info.exporting_to.map_or(0, PartitionId::get));
}

pub(super) fn get_partition_info(cur: &mut Cursor<'_>) -> Result<PartitionInfo, WireError> {
    let partition = PartitionId(cur.u32()?);
    let at = cur.position();
    let code = cur.u8()?;
    let state = state_from_code(code).ok_or(WireError::UnknownTag { tag: code, at })?;
    let routing = get_routing(cur)?;
    Ok(PartitionInfo {
        partition,
        state,
        routing,
        start: get_i32(cur)?,
        end: get_i32(cur)?,
        generation: cur.u64()?,
        importing_from: get_partition(cur)?,
        exporting_to: get_partition(cur)?,
    })
}

/// A create's fields: `routing:u8 has_range:u8 start:i32 end:i32` (both bounds 0 without a
/// range).
pub(super) fn put_create(out: &mut BytesMut, spec: &CreatePartition) {
    out.put_u8(routing_code(spec.routing));
    out.put_u8(u8::from(spec.range.is_some()));
    let (start, end) = spec.range.unwrap_or((0, 0));
    out.put_i32_le(start);
    out.put_i32_le(end);
}

pub(super) fn get_create(cur: &mut Cursor<'_>) -> Result<CreatePartition, WireError> {
    let routing = get_routing(cur)?;
    let has_range = cur.bool()?;
    let range = (get_i32(cur)?, get_i32(cur)?);
    Ok(CreatePartition {
        routing,
        range: has_range.then_some(range),
    })
}

/// A split's plan: `target:u32 has_boundary:u8 boundary:i32` (target 0: the next available
/// id; boundary 0 without one).
pub(super) fn put_plan(out: &mut BytesMut, plan: &SplitPlan) {
    out.put_u32_le(plan.target.map_or(0, PartitionId::get));
    out.put_u8(u8::from(plan.boundary.is_some()));
    out.put_i32_le(plan.boundary.unwrap_or(0));
}

pub(super) fn get_plan(cur: &mut Cursor<'_>) -> Result<SplitPlan, WireError> {
    let target = get_partition(cur)?;
    let has_boundary = cur.bool()?;
    let boundary = get_i32(cur)?;
    Ok(SplitPlan {
        target,
        boundary: has_boundary.then_some(boundary),
    })
}

/// A partition id where 0 (the system partition, never named by these fields) means none.
pub(super) fn get_partition(cur: &mut Cursor<'_>) -> Result<Option<PartitionId>, WireError> {
    Ok(Some(PartitionId(cur.u32()?)).filter(|p| p.get() != 0))
}

pub(super) fn get_i32(cur: &mut Cursor<'_>) -> Result<i32, WireError> {
    cur.take().map(i32::from_le_bytes)
}

fn get_routing(cur: &mut Cursor<'_>) -> Result<RoutingMode, WireError> {
    let at = cur.position();
    let code = cur.u8()?;
    routing_from_code(code).ok_or(WireError::UnknownTag { tag: code, at })
}

const fn state_code(state: RangeState) -> u8 {
    match state {
        RangeState::Active => 0,
        RangeState::Splitting => 1,
        RangeState::Draining => 2,
        RangeState::Removed => 3,
    }
}

const fn state_from_code(code: u8) -> Option<RangeState> {
    match code {
        0 => Some(RangeState::Active),
        1 => Some(RangeState::Splitting),
        2 => Some(RangeState::Draining),
        3 => Some(RangeState::Removed),
        _ => None,
    }
}

const fn routing_code(routing: RoutingMode) -> u8 {
    match routing {
        RoutingMode::HashRange => 0,
        RoutingMode::Unrouted => 1,
    }
}

const fn routing_from_code(code: u8) -> Option<RoutingMode> {
    match code {
        0 => Some(RoutingMode::HashRange),
        1 => Some(RoutingMode::Unrouted),
        _ => None,
    }
}
