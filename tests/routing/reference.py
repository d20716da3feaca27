#!/usr/bin/env python3
"""Expected routing values, computed from Kommander's algorithm outside this crate's code.

Regenerate (not run by CI; needs `pip install xxhash`, the reference C implementation):

    python3 tests/routing/reference.py > tests/routing/reference_values.rs && cargo fmt --all

The steps follow Kommander (C#, `System.IO.Hashing.XxHash64`, unchecked arithmetic, which is
the C# default and the Kommander project does not turn it off):

* `HashUtils.InversePrefixedStaticHash(key, '/')`: the key up to its last '/' (the whole key
  when it has none), UTF-8 encoded, xxHash64 with seed 0 (a `ulong`).
  `HashUtils.SimpleHash(prefix)` (the prefix variant) hashes the whole string.
* `GetPartitionKey`: `int rangeId = (int)hash;` keeps the low 32 bits as a two's-complement int;
  `if (rangeId < 0) rangeId = -rangeId;` wraps for int.MinValue, which stays int.MinValue.
  Then the first non-Removed HashRange entry with `StartRange <= rangeId <= EndRange`; none
  (always the case for int.MinValue, every range starts at 0 or above) throws RaftException.
* `RaftSystemCoordinatorHelpers.DivideIntoRanges(n)`: `total = (long)int.MaxValue + 1`,
  `base = total / n`, `remainder = total % n`; range i (id i + 1) holds `base + (i < remainder
  ? 1 : 0)` values: the leftover goes to the first ranges, one each.

This crate departs from Kommander at one point, on purpose: the hash int.MinValue routes as
int.MaxValue (saturating negation) instead of matching no range, so that no key is unroutable.
`ROUTING_HASHES` holds this crate's value; `kommander_range_id` keeps Kommander's for the record.

The key whose truncated hash is exactly int.MinValue (`MIN_VALUE_KEY`) was found by brute force
over lowercase ASCII strings, shortest first and then in lexicographic order, testing
`xxh64(s) & 0xFFFF_FFFF == 0x8000_0000`; `search_min_value_key()` is that search (hours in
pure Python; it was run as an equivalent compiled loop, and this script checks the result).
"""

import itertools
import string
import sys

import xxhash

INT_MIN = -(1 << 31)
INT_MAX = (1 << 31) - 1

# Found by search_min_value_key(); asserted below.
MIN_VALUE_KEY = "pecwjyl"

# Keys routed by GetPartitionKey (prefix before the last '/').
KEYS = [
    "plain",
    "orders/17",
    "orders/17/line/3",
    "orders/17/line/4",
    "a/b/c/d/e",
    "/x",
    "",
    "x/",
    "//",
    "café/crème",
    "日本/東京/1",
    "🦀/crab",
    MIN_VALUE_KEY,
    MIN_VALUE_KEY + "/1",
]

# Strings routed by GetPrefixPartitionKey (the whole string is hashed).
PREFIXES = [
    "orders/17/line",
    "orders/17",
    "a/b/c/d/e",
    "",
    "/",
    "日本/東京",
    MIN_VALUE_KEY,
]

MAP_SIZES = [1, 3, 7, 10, 64]
ROUTE_MAP_SIZES = [7, 64]


def to_csharp_int(value):
    """`(int)value` in an unchecked context: the low 32 bits, two's complement."""
    low = value & 0xFFFF_FFFF
    return low - (1 << 32) if low > INT_MAX else low


def xxh64(text):
    return xxhash.xxh64_intdigest(text.encode("utf-8"), seed=0)


def inverse_prefix(key):
    """`key[..key.LastIndexOf('/')]`, or the whole key."""
    pointer = key.rfind("/")
    return key if pointer == -1 else key[:pointer]


def kommander_range_id(hash64):
    """Kommander's `rangeId` for a 64-bit hash (int.MinValue stays int.MinValue)."""
    range_id = to_csharp_int(hash64)
    if range_id < 0:
        range_id = to_csharp_int(-range_id)
    return range_id


def routing_hash(hash64):
    """This crate's routing hash: Kommander's, except int.MinValue routes as int.MaxValue."""
    range_id = kommander_range_id(hash64)
    return INT_MAX if range_id == INT_MIN else range_id


def divide_into_ranges(count):
    total = INT_MAX + 1
    base, remainder = divmod(total, count)
    ranges, start = [], 0
    for i in range(count):
        size = base + (1 if i < remainder else 0)
        ranges.append((start, start + size - 1))
        start += size
    assert start == total
    return ranges


def route(ranges, hash_value):
    """Partition id (1-based) of the first range holding the hash, or None."""
    for index, (start, end) in enumerate(ranges):
        if start <= hash_value <= end:
            return index + 1
    return None


def search_min_value_key():
    for length in itertools.count(1):
        for letters in itertools.product(string.ascii_lowercase, repeat=length):
            candidate = "".join(letters)
            if xxhash.xxh64_intdigest(candidate.encode(), seed=0) & 0xFFFF_FFFF == 0x8000_0000:
                return candidate
    return None


def rust_str(text):
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= ord(ch) < 0x7F:
            out.append(ch)
        else:
            out.append("\\u{%x}" % ord(ch))
    return '"' + "".join(out) + '"'


def rust_option(value):
    return "None" if value is None else f"Some({value})"


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--search":
        print(search_min_value_key())
        return
    assert to_csharp_int(xxh64(MIN_VALUE_KEY)) == INT_MIN, "MIN_VALUE_KEY is not the edge"
    maps = {count: divide_into_ranges(count) for count in MAP_SIZES + ROUTE_MAP_SIZES}
    w = sys.stdout.write
    w("//! Generated by `tests/routing/reference.py`; do not edit (regenerate instead).\n\n")
    w("/// The key whose truncated hash is exactly `i32::MIN` (Kommander's `int.MinValue`).\n")
    w(f"pub(super) const MIN_VALUE_KEY: &str = {rust_str(MIN_VALUE_KEY)};\n\n")

    w("/// One string and what routing makes of it.\n")
    w("pub(super) struct Vector {\n")
    w("    /// The key (or, for the prefix variant, the prefix).\n")
    w("    pub(super) text: &'static str,\n")
    w("    /// xxHash64, seed 0, of the UTF-8 bytes of the hashed part.\n")
    w("    pub(super) xxh64: u64,\n")
    w("    /// Kommander's `(int)hash` (before negation).\n")
    w("    pub(super) truncated: i32,\n")
    w("    /// Kommander's `rangeId` (after negation).\n")
    w("    pub(super) kommander_hash: i32,\n")
    w("    /// Kommander's partition in the initial map of each count of `ROUTE_MAP_SIZES`.\n")
    w("    pub(super) kommander_partitions: [Option<u32>; ROUTE_MAP_SIZES.len()],\n")
    w("    /// This crate's routing hash.\n")
    w("    pub(super) routing_hash: i32,\n")
    w("    /// This crate's partition in the initial map of each count of `ROUTE_MAP_SIZES`.\n")
    w("    pub(super) partitions: [Option<u32>; ROUTE_MAP_SIZES.len()],\n")
    w("}\n\n")
    sizes = ", ".join(map(str, ROUTE_MAP_SIZES))
    w("/// The partition counts whose initial maps the vectors are routed in.\n")
    w(f"pub(super) const ROUTE_MAP_SIZES: [u32; {len(ROUTE_MAP_SIZES)}] = [{sizes}];\n\n")

    def vector_table(name, doc, items, hashed):
        w(f"/// {doc}\n")
        w(f"pub(super) const {name}: &[Vector] = &[\n")
        for item in items:
            hash64 = xxh64(hashed(item))
            kommander = kommander_range_id(hash64)
            ours = routing_hash(hash64)

            def routes(value):
                return ", ".join(rust_option(route(maps[c], value)) for c in ROUTE_MAP_SIZES)

            w("    Vector {\n")
            w(f"        text: {rust_str(item)},\n")
            w(f"        xxh64: {hash64:#x},\n")
            w(f"        truncated: {to_csharp_int(hash64)},\n")
            w(f"        kommander_hash: {kommander},\n")
            w(f"        kommander_partitions: [{routes(kommander)}],\n")
            w(f"        routing_hash: {ours},\n")
            w(f"        partitions: [{routes(ours)}],\n")
            w("    },\n")
        w("];\n\n")

    vector_table("KEY_VECTORS", "Keys routed by their prefix before the last `/`.", KEYS, inverse_prefix)
    vector_table("PREFIX_VECTORS", "Strings routed whole (the prefix variant).", PREFIXES, lambda s: s)

    w("/// The initial map of each partition count: `(count, [(start, end)])`, ids 1, 2, ...\n")
    w("pub(super) const INITIAL_MAPS: &[(u32, &[(i32, i32)])] = &[\n")
    for count in MAP_SIZES:
        pairs = ", ".join(f"({s}, {e})" for s, e in maps[count])
        w(f"    ({count}, &[{pairs}]),\n")
    w("];\n")


if __name__ == "__main__":
    main()
