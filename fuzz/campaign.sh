#!/usr/bin/env bash
# One fuzz target for a budget of CPU time (not wall time: the machine is shared), new inputs
# into a scratch directory, then folded back into the committed corpus with cmin.
#
#   fuzz/campaign.sh <target> [cpu-seconds=3600] [extra libFuzzer flags...]
#
# Prints libFuzzer's final statistics, the CPU seconds spent and the corpus sizes.
set -euo pipefail
cd "$(dirname "$0")"
target=$1
budget=${2:-3600}
shift $(( $# < 2 ? $# : 2 ))
cargo fuzz build --sanitizer none -O "$target" 2>/dev/null
binary=target/x86_64-unknown-linux-gnu/release/$target
scratch=/tmp/fuzz-campaign/$target
artifacts=$scratch-artifacts
mkdir -p "$scratch" "$artifacts"
before=$(ls corpus/"$target" | wc -l)
"$binary" "$scratch" corpus/"$target" -rss_limit_mb=1024 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$@" \
    >"$scratch.log" 2>&1 &
pid=$!
ticks=$(getconf CLK_TCK)
cpu=0
while kill -0 "$pid" 2>/dev/null; do
    sleep 10
    # utime + stime of the fuzzer in clock ticks: fields 14 and 15 of /proc/<pid>/stat, 12
    # and 13 once the command name (which may hold spaces) is cut off.
    stat=$(cat /proc/"$pid"/stat 2>/dev/null) || break
    cpu=$(awk -v t="$ticks" '{ print int(($12 + $13) / t) }' <<<"${stat##*) }")
    if (( cpu >= budget )); then
        kill -INT "$pid"
        break
    fi
done
wait "$pid" || true
grep -E "^(stat::|Done|==|INFO: .*crash|SUMMARY)" "$scratch.log" || true
if [ -n "$(ls "$artifacts")" ]; then
    echo "the fuzzer found inputs that fail: $(ls "$artifacts")"
    exit 1
fi
cp -n "$scratch"/* corpus/"$target"/ 2>/dev/null || true
cargo fuzz cmin --sanitizer none -O "$target" corpus/"$target" -- -use_counters=0 >/dev/null 2>&1
# cmin renames or drops the named seeds, which the replay tests check by name: bring them back
# and drop their hash-named copies.
for named in $(git ls-files corpus/"$target" | grep -Ev '/[0-9a-f]{40}$'); do
    git checkout -- "$named"
    rm -f corpus/"$target"/"$(sha1sum <"$named" | cut -c1-40)"
done
echo "$target: $cpu s of CPU; corpus $before -> $(ls corpus/"$target" | wc -l) files"
