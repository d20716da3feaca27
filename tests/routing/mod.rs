//! Key routing and the initial partition map against values computed outside this crate:
//! `reference.py` follows Kommander's C# (`GetPartitionKey`, `GetPrefixPartitionKey`,
//! `DivideIntoRanges`) with the reference xxHash64 implementation and C#'s unchecked 32-bit
//! arithmetic, and generated `reference_values.rs` (regenerate it, never edit it).

mod reference_values;

use kommander_raft::node::partition_map::{key_hash, prefix_hash};
use kommander_raft::{NoRouteError, PartitionId, PartitionMap, RangeState, RoutingMode};
use xxhash_rust::xxh64::xxh64;

use reference_values::{
    INITIAL_MAPS, KEY_VECTORS, MIN_VALUE_KEY, PREFIX_VECTORS, ROUTE_MAP_SIZES, Vector,
};

/// One routing variant: what it hashes, its hash, and the map's answer.
struct Variant {
    name: &'static str,
    hashed: fn(&str) -> &str,
    hash: fn(&str) -> i32,
    route: fn(&PartitionMap, &str) -> Result<PartitionId, NoRouteError>,
}

/// Checks one table: the hash, the routing hash and the partition in each initial map.
fn check(vectors: &[Vector], variant: &Variant) {
    let maps: Vec<PartitionMap> = ROUTE_MAP_SIZES
        .iter()
        .map(|&count| PartitionMap::initial(count).expect("valid count"))
        .collect();
    let name = variant.name;
    for v in vectors {
        assert_eq!(
            xxh64((variant.hashed)(v.text).as_bytes(), 0),
            v.xxh64,
            "{name} {:?}: xxHash64 of the hashed part",
            v.text
        );
        assert_eq!(
            (variant.hash)(v.text),
            v.routing_hash,
            "{name} {:?}",
            v.text
        );
        // The one departure from Kommander: int.MinValue, which Kommander cannot route.
        if v.kommander_hash == i32::MIN {
            assert_eq!(v.routing_hash, i32::MAX, "{name} {:?}", v.text);
            assert_eq!(v.kommander_partitions, [None; ROUTE_MAP_SIZES.len()]);
        } else {
            assert_eq!(v.routing_hash, v.kommander_hash, "{name} {:?}", v.text);
            assert_eq!(v.partitions, v.kommander_partitions, "{name} {:?}", v.text);
        }
        for ((map, count), expected) in maps.iter().zip(ROUTE_MAP_SIZES).zip(v.partitions) {
            assert_eq!(
                (variant.route)(map, v.text).ok(),
                expected.map(PartitionId),
                "{name} {:?} among {count} partitions",
                v.text
            );
        }
    }
}

/// The part of a key Kommander hashes: up to its last `/`, else the whole key.
fn key_prefix(key: &str) -> &str {
    key.rfind('/').map_or(key, |at| &key[..at])
}

#[test]
fn keys_route_as_kommander_by_the_prefix_before_the_last_slash() {
    let variant = Variant {
        name: "key",
        hashed: key_prefix,
        hash: key_hash,
        route: PartitionMap::partition_for_key,
    };
    check(KEY_VECTORS, &variant);
}

#[test]
fn the_prefix_variant_routes_as_kommander_by_the_whole_string() {
    let variant = Variant {
        name: "prefix",
        hashed: |s| s,
        hash: prefix_hash,
        route: PartitionMap::partition_for_prefix,
    };
    check(PREFIX_VECTORS, &variant);
}

/// The tables cover what they claim: keys without `/`, with several, an empty prefix,
/// non-ASCII UTF-8, a negative truncated hash, and the `int.MinValue` edge in both variants.
#[test]
fn the_vectors_cover_the_edges() {
    let keys = |f: fn(&Vector) -> bool| KEY_VECTORS.iter().any(f);
    assert!(keys(|v| !v.text.contains('/')));
    assert!(keys(|v| v.text.matches('/').count() >= 3));
    assert!(keys(
        |v| v.text.starts_with('/') && v.text.matches('/').count() == 1
    ));
    assert!(keys(|v| !v.text.is_ascii()));
    assert!(keys(|v| v.truncated < 0 && v.truncated != i32::MIN));
    assert!(keys(|v| v.text == MIN_VALUE_KEY && v.truncated == i32::MIN));
    assert!(keys(
        |v| v.text.starts_with(MIN_VALUE_KEY) && v.text.contains('/')
    ));
    assert!(PREFIX_VECTORS.iter().any(|v| v.truncated == i32::MIN));
    assert!(PREFIX_VECTORS.iter().any(|v| v.text.contains('/')));
}

/// `int.MinValue` routes to the range holding the top of the hash space instead of nowhere.
#[test]
fn the_min_value_hash_routes_to_the_top_of_the_space() {
    for count in [1, 3, 7, 64] {
        let map = PartitionMap::initial(count).expect("valid count");
        let last = PartitionId(count);
        assert_eq!(map.partition_for_key(MIN_VALUE_KEY), Ok(last));
        assert_eq!(map.partition_for_prefix(MIN_VALUE_KEY), Ok(last));
    }
}

#[test]
fn initial_maps_spread_the_leftover_over_the_first_ranges_as_kommander() {
    for &(count, ranges) in INITIAL_MAPS {
        let map = PartitionMap::initial(count).expect("valid count");
        assert_eq!(map.version, 1);
        let got: Vec<(i32, i32)> = map.partitions.iter().map(|r| (r.start, r.end)).collect();
        assert_eq!(got, ranges, "initial map of {count}");
        for (id, r) in (1..).zip(&map.partitions) {
            assert_eq!(r.partition_id, PartitionId(id));
            assert_eq!(r.generation, 1);
            assert_eq!(r.state, RangeState::Active);
            assert_eq!(r.routing, RoutingMode::HashRange);
        }
    }
    let counts: Vec<u32> = INITIAL_MAPS.iter().map(|&(count, _)| count).collect();
    assert_eq!(counts, [1, 3, 7, 10, 64]);
}
