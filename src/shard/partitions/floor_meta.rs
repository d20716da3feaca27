//! What the shard keeps with a partition's WAL floor (the WAL's opaque *floor meta*): the
//! configuration in force at the floor and, for partition 0, the partition map in force there;
//! for a user partition that took part in a split or merge, its split marks (the generation
//! and import entries at or below the floor, `marks.rs`). One versioned encoding, read back
//! at recovery; the WAL stores the bytes and never reads them.
//!
//! * empty: neither (the partition's first configuration governs; no map);
//! * a bare [`Configuration::encode`] (its own version byte first, 2): the configuration, no
//!   map, no marks — what every partition but 0 keeps until a split or merge, and what
//!   partition 0 kept before the map moved here;
//! * [`WITH_MAP`], then the configuration's length (`u32`, little-endian; 0: the first one)
//!   and encoding, then the map's length (`u32`) and encoding ([`PartitionMap::encode`]);
//! * [`WITH_MARKS`], then the configuration's length (`u32`; 0: the first one) and encoding,
//!   then the marks ([`LogMarks::encode_into`]: the generation `u64`, the draining flag `u8`,
//!   the import's state `u8` — 0 none, 1 begun, 2 ended — and, unless 0, its transfer: source
//!   `u32`, target `u32`, generation `u64`, start `i32`, end `i32`).
//!
//! The longest floor meta partition 0 keeps is [`floor_meta_bytes_max`] of the largest map the
//! limits allow; an encoding beyond the WAL's bound is refused here, before the WAL sees it.

use bytes::{BufMut, Bytes, BytesMut};

use super::map::{PartitionMap, PartitionMapError};
use super::marks::{LogMarks, MarkError};
use crate::core::{CONFIGURATION_BYTES_MAX, Configuration, ConfigurationError};

/// The first byte of a floor meta that carries a map (distinct from the configuration
/// encoding's version byte, so a bare configuration still reads).
const WITH_MAP: u8 = 0x4d;

/// The first byte of a floor meta that carries split marks (distinct from the others).
const WITH_MARKS: u8 = 0x47;

/// The longest floor meta with split marks (within [`floor_meta_bytes_max`] of any map bound:
/// the empty map's frame alone is longer than the marks).
#[cfg(test)]
const MARKS_FLOOR_META_BYTES_MAX: usize =
    1 + 4 + CONFIGURATION_BYTES_MAX + LogMarks::ENCODED_BYTES_MAX;

/// The fixed part of a floor meta with a map: the version byte and the two lengths.
const HEADER_LEN: usize = 1 + 4 + 4;

/// The longest floor meta holding any configuration and a map of at most `ranges` ranges,
/// tombstones included (what the WAL's `floor_meta_bytes_max` must allow).
#[must_use]
pub(crate) fn floor_meta_bytes_max(ranges: usize) -> usize {
    HEADER_LEN + CONFIGURATION_BYTES_MAX + PartitionMap::encoded_bytes_max(ranges)
}

/// Why a floor meta cannot be written or read back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum FloorMetaError {
    /// The encoding is over the WAL's `floor_meta_bytes_max`: the map is larger than the
    /// limits allow (`partition_map_ranges_max`).
    #[error("a floor meta of {len} bytes is over floor_meta_bytes_max = {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The bytes are not a floor meta (truncated, trailing bytes, an unknown version).
    #[error("malformed floor meta: {0}")]
    Malformed(&'static str),
    /// The configuration it holds does not decode.
    #[error("the floor meta's configuration: {0}")]
    Configuration(#[from] ConfigurationError),
    /// The map it holds does not decode or is not valid.
    #[error("the floor meta's partition map: {0}")]
    Map(#[from] PartitionMapError),
    /// The split marks it holds do not decode.
    #[error("the floor meta's split marks: {0}")]
    Marks(#[from] MarkError),
}

/// A floor meta read back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FloorMeta {
    /// The configuration in force at the floor (`None`: the partition's first one).
    pub(crate) configuration: Option<Configuration>,
    /// The partition map in force at the floor (partition 0 only; `None`: none kept).
    pub(crate) map: Option<PartitionMap>,
    /// The split marks at the floor (a user partition's; default: none kept).
    pub(crate) marks: LogMarks,
}

/// Whether a floor meta of at most `floor_meta_bytes_max` bytes can keep the map encoded in
/// `map` beside any configuration: the map partition 0's shard accepts from a committed entry.
///
/// # Errors
/// [`FloorMetaError::Map`] when `map` is not a valid map; [`FloorMetaError::TooLarge`] when
/// the floor meta it needs is over the bound (the map has more ranges than the limits allow).
pub(crate) fn map_for_floor(
    map: &[u8],
    floor_meta_bytes_max: usize,
) -> Result<PartitionMap, FloorMetaError> {
    let len = floor_meta_len_with(map.len());
    if len > floor_meta_bytes_max {
        return Err(FloorMetaError::TooLarge {
            len,
            max: floor_meta_bytes_max,
        });
    }
    Ok(PartitionMap::decode(map)?)
}

/// The room partition 0's floor meta needs to keep a map whose encoding is `map_len` bytes
/// long beside any configuration.
pub(crate) fn floor_meta_len_with(map_len: usize) -> usize {
    HEADER_LEN + CONFIGURATION_BYTES_MAX + map_len
}

/// The floor meta of `configuration` (encoded; empty: the first one) and `map` (encoded;
/// empty: none). A map [`map_for_floor`] accepted fits the bound it was checked against.
///
/// # Panics
/// A part over 4 GiB (never: both are bounded far below by the WAL's frame).
pub(crate) fn encode_floor_meta(configuration: &[u8], map: &[u8]) -> Bytes {
    if map.is_empty() {
        return Bytes::copy_from_slice(configuration);
    }
    let length = |part: &[u8]| {
        u32::try_from(part.len()).unwrap_or_else(|_| panic!("a floor meta part over 4 GiB"))
    };
    let mut out = BytesMut::with_capacity(HEADER_LEN + configuration.len() + map.len());
    out.put_u8(WITH_MAP);
    out.put_u32_le(length(configuration));
    out.put_slice(configuration);
    out.put_u32_le(length(map));
    out.put_slice(map);
    out.freeze()
}

/// The floor meta of a user partition: `configuration` (encoded; empty: the first one) and
/// its split `marks` — the bare configuration when it has none, as before splits existed.
///
/// # Panics
/// A configuration over 4 GiB (never: it is bounded by `CONFIGURATION_BYTES_MAX`).
pub(crate) fn encode_marks_floor_meta(configuration: &[u8], marks: LogMarks) -> Bytes {
    if marks == LogMarks::default() {
        return Bytes::copy_from_slice(configuration);
    }
    let length =
        u32::try_from(configuration.len()).unwrap_or_else(|_| panic!("a configuration over 4 GiB"));
    let mut out =
        BytesMut::with_capacity(1 + 4 + configuration.len() + LogMarks::ENCODED_BYTES_MAX);
    out.put_u8(WITH_MARKS);
    out.put_u32_le(length);
    out.put_slice(configuration);
    marks.encode_into(&mut out);
    out.freeze()
}

/// Reads a floor meta back; total: any bytes give a value or an error.
///
/// # Errors
/// [`FloorMetaError`] naming what does not decode.
pub(crate) fn decode_floor_meta(bytes: &[u8]) -> Result<FloorMeta, FloorMetaError> {
    let Some((&first, rest)) = bytes.split_first() else {
        return Ok(FloorMeta::default());
    };
    if first == WITH_MARKS {
        let (configuration, rest) = take_prefixed(rest)?;
        return Ok(FloorMeta {
            configuration: (!configuration.is_empty())
                .then(|| Configuration::decode(configuration))
                .transpose()?,
            map: None,
            marks: LogMarks::decode(rest)?,
        });
    }
    if first != WITH_MAP {
        return Ok(FloorMeta {
            configuration: Some(Configuration::decode(bytes)?),
            map: None,
            marks: LogMarks::default(),
        });
    }
    let (configuration, rest) = take_prefixed(rest)?;
    let (map, rest) = take_prefixed(rest)?;
    if !rest.is_empty() {
        return Err(FloorMetaError::Malformed("bytes after the map"));
    }
    if map.is_empty() {
        return Err(FloorMetaError::Malformed("a floor meta with an empty map"));
    }
    Ok(FloorMeta {
        configuration: (!configuration.is_empty())
            .then(|| Configuration::decode(configuration))
            .transpose()?,
        map: Some(PartitionMap::decode(map)?),
        marks: LogMarks::default(),
    })
}

/// A `u32` little-endian length, then that many bytes; and what follows.
fn take_prefixed(bytes: &[u8]) -> Result<(&[u8], &[u8]), FloorMetaError> {
    let [l0, l1, l2, l3, rest @ ..] = bytes else {
        return Err(FloorMetaError::Malformed("truncated inside a length"));
    };
    let len = u32::from_le_bytes([*l0, *l1, *l2, *l3]) as usize;
    if rest.len() < len {
        return Err(FloorMetaError::Malformed("truncated inside a part"));
    }
    Ok(rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::NodeId;
    use crate::shard::partitions::map::tests::widest;

    /// The longest configuration encoding: every member, the largest context.
    fn widest_configuration() -> Bytes {
        Configuration::new(
            (1..=crate::core::CONFIGURATION_MEMBERS_MAX as u64)
                .map(NodeId)
                .collect(),
            Vec::new(),
        )
        .expect("valid")
        .with_context(Bytes::from(
            vec![7; crate::core::CONFIGURATION_CONTEXT_BYTES_MAX],
        ))
        .expect("within the context bound")
        .encode()
    }

    fn configuration() -> Configuration {
        Configuration::new(vec![NodeId(1), NodeId(2)], vec![NodeId(3)]).expect("valid")
    }

    #[test]
    fn a_floor_meta_round_trips_with_and_without_a_map() {
        let map = PartitionMap::initial(3).expect("valid count");
        let c = configuration();
        for (configuration, with_map) in [
            (Some(c), true),
            (None, true),
            (Some(configuration()), false),
        ] {
            let encoded_configuration = configuration
                .as_ref()
                .map_or_else(Bytes::new, Configuration::encode);
            let encoded_map = if with_map { map.encode() } else { Vec::new() };
            let meta = encode_floor_meta(&encoded_configuration, &encoded_map);
            assert_eq!(
                decode_floor_meta(&meta),
                Ok(FloorMeta {
                    configuration,
                    map: with_map.then(|| map.clone()),
                    marks: LogMarks::default(),
                })
            );
        }
        // Without a map it is the bare configuration, as every WAL wrote it before.
        let bare = encode_floor_meta(&configuration().encode(), &[]);
        assert_eq!(bare, configuration().encode());
        assert_eq!(decode_floor_meta(&[]), Ok(FloorMeta::default()));
    }

    #[test]
    fn the_largest_map_fits_the_bound_and_a_larger_one_is_refused() {
        let ranges = 50;
        let max = floor_meta_bytes_max(ranges);
        let widest_configuration = widest_configuration();
        assert_eq!(widest_configuration.len(), CONFIGURATION_BYTES_MAX);
        let map = |n| widest(n).encode();
        let widest = encode_floor_meta(&widest_configuration, &map(50));
        assert!(widest.len() <= max, "{} > {max}", widest.len());
        // Accepted up to the bound (a valid map), refused with a typed error beyond it.
        let valid = PartitionMap::initial(50).expect("valid count");
        assert_eq!(map_for_floor(&valid.encode(), max), Ok(valid));
        assert!(!matches!(
            map_for_floor(&map(50), max),
            Err(FloorMetaError::TooLarge { .. })
        ));
        assert_eq!(
            map_for_floor(&map(51), max),
            Err(FloorMetaError::TooLarge {
                len: HEADER_LEN + CONFIGURATION_BYTES_MAX + map(51).len(),
                max
            })
        );
    }

    /// A user partition's marks round-trip with or without a configuration; without marks it
    /// is the bare configuration; the longest fits every map bound; damage is a typed error.
    #[test]
    fn split_marks_round_trip_and_fit_the_bound() {
        use crate::core::PartitionId;
        use crate::shard::partitions::marks::{GenerationMark, ImportMark};
        use crate::shard::state_transfer::RangeTransfer;
        let marks = LogMarks {
            generation: GenerationMark {
                generation: u64::MAX,
                draining: true,
            },
            import: Some(ImportMark {
                plan: RangeTransfer {
                    source: PartitionId(u32::MAX),
                    target: PartitionId(u32::MAX),
                    generation: u64::MAX,
                    start: i32::MIN,
                    end: i32::MAX,
                },
                ended: true,
            }),
        };
        for configuration in [Some(configuration()), None] {
            let encoded = configuration
                .as_ref()
                .map_or_else(Bytes::new, Configuration::encode);
            let meta = encode_marks_floor_meta(&encoded, marks);
            assert_eq!(
                decode_floor_meta(&meta),
                Ok(FloorMeta {
                    configuration: configuration.clone(),
                    map: None,
                    marks,
                })
            );
            for len in 1..meta.len() {
                assert!(
                    decode_floor_meta(&meta[..len]).is_err(),
                    "truncated at {len}"
                );
            }
        }
        assert_eq!(
            encode_marks_floor_meta(&configuration().encode(), LogMarks::default()),
            configuration().encode()
        );
        assert!(MARKS_FLOOR_META_BYTES_MAX <= floor_meta_bytes_max(0));
        let widest = widest_configuration();
        assert_eq!(
            encode_marks_floor_meta(&widest, marks).len(),
            MARKS_FLOOR_META_BYTES_MAX
        );
    }

    #[test]
    fn damaged_bytes_are_a_typed_error() {
        let map = PartitionMap::initial(2).expect("valid count").encode();
        let meta = encode_floor_meta(&configuration().encode(), &map);
        // Every truncation and every appended byte is refused, never a panic.
        for len in 1..meta.len() {
            assert!(
                decode_floor_meta(&meta[..len]).is_err(),
                "truncated at {len}"
            );
        }
        let mut longer = meta.to_vec();
        longer.push(0);
        assert_eq!(
            decode_floor_meta(&longer),
            Err(FloorMetaError::Malformed("bytes after the map"))
        );
        // A damaged map, a damaged configuration.
        let mut damaged = meta.to_vec();
        let at = damaged.len() - 3;
        damaged[at] = b'!';
        assert!(matches!(
            decode_floor_meta(&damaged),
            Err(FloorMetaError::Map(_))
        ));
        let mut damaged = meta.to_vec();
        damaged[5] = 99;
        assert!(matches!(
            decode_floor_meta(&damaged),
            Err(FloorMetaError::Configuration(_))
        ));
        assert!(matches!(
            decode_floor_meta(&[0xff, 1, 2]),
            Err(FloorMetaError::Configuration(_))
        ));
    }
}
