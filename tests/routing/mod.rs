//! Key routing and the initial partition map against values computed outside this crate:
//! `reference.py` follows Kommander's C# (`GetPartitionKey`, `GetPrefixPartitionKey`,
//! `DivideIntoRanges`) with the reference xxHash64 implementation and C#'s unchecked 32-bit
//! arithmetic, and wrote `reference_values.json` (regenerate it, never edit it).

use kommander_raft::node::partition_map::{key_hash, prefix_hash};
use kommander_raft::{NoRouteError, PartitionId, PartitionMap, RangeState, Routes, RoutingMode};
use serde::Deserialize;
use xxhash_rust::xxh64::xxh64;

/// What `reference.py` computed.
#[derive(Deserialize)]
struct Reference {
    /// The key whose truncated hash is exactly `i32::MIN` (Kommander's `int.MinValue`).
    min_value_key: String,
    /// The partition counts whose initial maps the vectors are routed in.
    route_map_sizes: Vec<u32>,
    /// Keys routed by their prefix before the last `/`.
    keys: Vec<Vector>,
    /// Strings routed whole (the prefix variant).
    prefixes: Vec<Vector>,
    /// Initial maps, ranges in partition id order from 1.
    initial_maps: Vec<InitialMap>,
}

/// One string and what routing makes of it.
#[derive(Deserialize)]
struct Vector {
    /// The key (or, for the prefix variant, the prefix).
    text: String,
    /// xxHash64, seed 0, of the UTF-8 bytes of the hashed part.
    xxh64: u64,
    /// Kommander's `(int)hash` (before negation).
    truncated: i32,
    /// Kommander's `rangeId` (after negation).
    kommander_hash: i32,
    /// Kommander's partition in the initial map of each of `route_map_sizes`.
    kommander_partitions: Vec<Option<u32>>,
    /// This crate's routing hash.
    routing_hash: i32,
    /// This crate's partition in the initial map of each of `route_map_sizes`.
    partitions: Vec<Option<u32>>,
}

#[derive(Deserialize)]
struct InitialMap {
    count: u32,
    ranges: Vec<(i32, i32)>,
}

fn reference() -> Reference {
    serde_json::from_str(include_str!("reference_values.json")).expect("reference values")
}

/// One routing variant: what it hashes, its hash, and the map's answer.
struct Variant {
    name: &'static str,
    hashed: fn(&str) -> &str,
    hash: fn(&str) -> i32,
    route: fn(&PartitionMap, &str) -> Result<PartitionId, NoRouteError>,
    /// The same answer from the map's `Routes` (what `Raft::partition_for_key` asks).
    indexed: fn(&Routes, &str) -> Result<PartitionId, NoRouteError>,
}

/// Checks one table: the hash, the routing hash and the partition in each initial map.
fn check(reference: &Reference, vectors: &[Vector], variant: &Variant) {
    assert!(!vectors.is_empty());
    let maps: Vec<PartitionMap> = reference
        .route_map_sizes
        .iter()
        .map(|&count| PartitionMap::initial(count).expect("valid count"))
        .collect();
    let name = variant.name;
    for v in vectors {
        let text = v.text.as_str();
        assert_eq!(
            xxh64((variant.hashed)(text).as_bytes(), 0),
            v.xxh64,
            "{name} {text:?}: xxHash64 of the hashed part"
        );
        assert_eq!((variant.hash)(text), v.routing_hash, "{name} {text:?}");
        // The one departure from Kommander: int.MinValue, which Kommander cannot route.
        if v.kommander_hash == i32::MIN {
            assert_eq!(v.routing_hash, i32::MAX, "{name} {text:?}");
            assert!(v.kommander_partitions.iter().all(Option::is_none));
        } else {
            assert_eq!(v.routing_hash, v.kommander_hash, "{name} {text:?}");
            assert_eq!(v.partitions, v.kommander_partitions, "{name} {text:?}");
        }
        assert_eq!(v.partitions.len(), maps.len());
        for ((map, count), expected) in maps
            .iter()
            .zip(&reference.route_map_sizes)
            .zip(&v.partitions)
        {
            assert_eq!(
                (variant.route)(map, text).ok(),
                expected.map(PartitionId),
                "{name} {text:?} among {count} partitions"
            );
            assert_eq!(
                (variant.indexed)(&Routes::of(map), text).ok(),
                expected.map(PartitionId),
                "{name} {text:?} among {count} partitions, by the map's routes"
            );
        }
    }
}

/// The part of a key Kommander hashes: up to its last `/`, else the whole key.
fn key_prefix(key: &str) -> &str {
    key.rfind('/').map_or(key, |at| &key[..at])
}

/// The part of a prefix Kommander hashes: all of it.
fn whole(prefix: &str) -> &str {
    prefix
}

/// `GetPartitionKey`.
const KEY: Variant = Variant {
    name: "key",
    hashed: key_prefix,
    hash: key_hash,
    route: PartitionMap::partition_for_key,
    indexed: Routes::partition_for_key,
};

/// `GetPrefixPartitionKey`.
const PREFIX: Variant = Variant {
    name: "prefix",
    hashed: whole,
    hash: prefix_hash,
    route: PartitionMap::partition_for_prefix,
    indexed: Routes::partition_for_prefix,
};

#[test]
fn keys_route_as_kommander_by_the_prefix_before_the_last_slash() {
    let reference = reference();
    check(&reference, &reference.keys, &KEY);
}

#[test]
fn the_prefix_variant_routes_as_kommander_by_the_whole_string() {
    let reference = reference();
    check(&reference, &reference.prefixes, &PREFIX);
}

/// The tables cover what they claim: keys without `/`, with several, an empty prefix,
/// non-ASCII UTF-8, a negative truncated hash, and the `int.MinValue` edge in both variants.
#[test]
fn the_vectors_cover_the_edges() {
    let reference = reference();
    let min_key = reference.min_value_key.as_str();
    let keys = |f: &dyn Fn(&Vector) -> bool| reference.keys.iter().any(f);
    assert!(keys(&|v| !v.text.contains('/')));
    assert!(keys(&|v| v.text.matches('/').count() >= 3));
    assert!(keys(
        &|v| v.text.starts_with('/') && v.text.matches('/').count() == 1
    ));
    assert!(keys(&|v| !v.text.is_ascii()));
    assert!(keys(&|v| v.truncated < 0 && v.truncated != i32::MIN));
    assert!(keys(&|v| v.text == min_key && v.truncated == i32::MIN));
    assert!(keys(
        &|v| v.text.starts_with(min_key) && v.text.contains('/')
    ));
    let prefixes = |f: &dyn Fn(&Vector) -> bool| reference.prefixes.iter().any(f);
    assert!(prefixes(&|v| v.truncated == i32::MIN));
    assert!(prefixes(&|v| v.text.contains('/')));
}

/// `int.MinValue` routes to the range holding the top of the hash space instead of nowhere.
#[test]
fn the_min_value_hash_routes_to_the_top_of_the_space() {
    let reference = reference();
    let key = reference.min_value_key.as_str();
    for count in [1, 3, 7, 64] {
        let map = PartitionMap::initial(count).expect("valid count");
        let last = PartitionId(count);
        assert_eq!(map.partition_for_key(key), Ok(last));
        assert_eq!(map.partition_for_prefix(key), Ok(last));
    }
}

#[test]
fn initial_maps_spread_the_leftover_over_the_first_ranges_as_kommander() {
    let reference = reference();
    for expected in &reference.initial_maps {
        let count = expected.count;
        let map = PartitionMap::initial(count).expect("valid count");
        assert_eq!(map.version, 1);
        let got: Vec<(i32, i32)> = map.partitions.iter().map(|r| (r.start, r.end)).collect();
        assert_eq!(got, expected.ranges, "initial map of {count}");
        for (id, r) in (1..).zip(&map.partitions) {
            assert_eq!(r.partition_id, PartitionId(id));
            assert_eq!(r.generation, 1);
            assert_eq!(r.state, RangeState::Active);
            assert_eq!(r.routing, RoutingMode::HashRange);
        }
    }
    let counts: Vec<u32> = reference.initial_maps.iter().map(|m| m.count).collect();
    assert_eq!(counts, [1, 3, 7, 10, 64]);
}
