#!/usr/bin/env python3
"""Expected routing values, computed from Kommander's algorithm outside this crate's code.

Regenerate (not run by CI; needs `pip install xxhash`, the reference C implementation):

    python3 tests/routing/reference.py > tests/routing/reference_values.json

The steps follow Kommander (C#, `System.IO.Hashing.XxHash64`, unchecked arithmetic, which is
the C# default and the Kommander project does not turn it off):

* `HashUtils.InversePrefixedStaticHash(key, '/')`: the key up to its last '/' (the whole key
  when it has none), UTF-8 encoded, xxHash64 with seed 0 (a `ulong`).
  `HashUtils.SimpleHash(prefix)` (the prefix variant) hashes the whole string.
* `GetPartitionKey`: `int rangeId = (int)hash;` keeps the low 32 bits as a two's-complement int;
  `if (rangeId < 0) rangeId = -rangeId;` wraps for int.MinValue, which stays int.MinValue.
  Then the first non-Removed HashRange entry with `StartRange <= rangeId <= EndRange`; none
  throws RaftException, which is what int.MinValue gets from every map whose ranges start at
  0 or above (the initial map and everything split from it).
* `RaftSystemCoordinatorHelpers.DivideIntoRanges(n)`: `total = (long)int.MaxValue + 1`,
  `base = total / n`, `remainder = total % n`; range i (id i + 1) holds `base + (i < remainder
  ? 1 : 0)` values: the leftover goes to the first ranges, one each.

This crate departs from Kommander at one point, on purpose: the hash int.MinValue routes as
int.MaxValue (saturating negation) instead of matching no range, so that no key is unroutable.
Each vector holds both: `kommander_hash`/`kommander_partitions` and `routing_hash`/`partitions`.

The key whose truncated hash is exactly int.MinValue (`MIN_VALUE_KEY`) was found by brute force
over lowercase ASCII strings, shortest first and then in lexicographic order, testing
`xxh64(s) & 0xFFFF_FFFF == 0x8000_0000`: it is the 5,003,841,894th string tried.
`search_min_value_key()` (`reference.py --search`) is that search; it takes tens of minutes in
pure Python, so it was run as the same loop compiled, and this script asserts the result.
"""

import itertools
import json
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


def vector(text, hashed, maps):
    hash64 = xxh64(hashed)
    kommander = kommander_range_id(hash64)
    ours = routing_hash(hash64)
    return {
        "text": text,
        "xxh64": hash64,
        "truncated": to_csharp_int(hash64),
        "kommander_hash": kommander,
        "kommander_partitions": [route(maps[c], kommander) for c in ROUTE_MAP_SIZES],
        "routing_hash": ours,
        "partitions": [route(maps[c], ours) for c in ROUTE_MAP_SIZES],
    }


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--search":
        print(search_min_value_key())
        return
    assert to_csharp_int(xxh64(MIN_VALUE_KEY)) == INT_MIN, "MIN_VALUE_KEY is not the edge"
    maps = {count: divide_into_ranges(count) for count in MAP_SIZES + ROUTE_MAP_SIZES}
    reference = {
        "generated_by": "tests/routing/reference.py (regenerate, do not edit)",
        "min_value_key": MIN_VALUE_KEY,
        "route_map_sizes": ROUTE_MAP_SIZES,
        "keys": [vector(key, inverse_prefix(key), maps) for key in KEYS],
        "prefixes": [vector(prefix, prefix, maps) for prefix in PREFIXES],
        "initial_maps": [{"count": c, "ranges": maps[c]} for c in MAP_SIZES],
    }
    # One vector (or map) a line: readable, and a regenerated file diffs line by line.
    lines = []
    for name, value in reference.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            items = ",\n".join("    " + json.dumps(item, ensure_ascii=False) for item in value)
            lines.append(f'  "{name}": [\n{items}\n  ]')
        else:
            lines.append(f'  "{name}": {json.dumps(value, ensure_ascii=False)}')
    sys.stdout.write("{\n" + ",\n".join(lines) + "\n}\n")


if __name__ == "__main__":
    main()
