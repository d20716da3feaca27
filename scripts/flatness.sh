#!/usr/bin/env bash
# flatness.sh: does a long `kommander bench` keep memory and disk flat?
#
# Runs `kommander bench` (3 in-process nodes over loopback TCP, real WALs with fsync, every node
# checkpointing by the binary's default policy) for DURATION seconds and every INTERVAL seconds
# samples the process's memory (/proc/<pid>/status: VmRSS and its anonymous part RssAnon; the
# rest is mostly file pages of the WAL mappings) and the size of each node's WAL directory
# (`du -sb`: apparent bytes, so zero-filled segments prepared ahead count in full). Prints one
# line per sample, then the first minute against the last minute (mean of the samples in each,
# in MiB) and the load average. Each line also shows, from the bench's progress line of the
# last second, its writes/s and `log_entries`: the entries above the in-memory floor, summed
# over the nodes and partitions (what checkpoints bound).
#
# Usage:
#   scripts/flatness.sh [-- EXTRA BENCH OPTIONS...]
#   DURATION=300 INTERVAL=10 scripts/flatness.sh -- --partitions 8 --checkpoint-interval-entries 0
#
# Environment:
#   KOMMANDER_BIN  the binary (default: target/release/kommander; build it first with
#                  `cargo build --release --bin kommander`)
#   DURATION       seconds of measured writes (default 300)
#   INTERVAL       seconds between samples (default 10)
#   WARMUP         samples before this many seconds are left out of the range printed after
#                  the means (default 20: the WAL's first segments are still being prepared)
#   BENCH_DIR      where the bench creates its temporary WAL directory (default: a fresh
#                  directory under ${TMPDIR:-/tmp}, removed at the end)
#
# After the summary it prints the bench's own output (throughput, latency, checkpoints
# committed, any warning); the exit status is the bench's.
set -euo pipefail

bin=${KOMMANDER_BIN:-target/release/kommander}
duration=${DURATION:-300}
interval=${INTERVAL:-10}
warmup=${WARMUP:-20}
if [[ ${1:-} == "--" ]]; then shift; fi

if [[ ! -x $bin ]]; then
    echo "flatness.sh: no binary at $bin (cargo build --release --bin kommander)" >&2
    exit 2
fi

own_dir=
if [[ -z ${BENCH_DIR:-} ]]; then
    BENCH_DIR=$(mktemp -d "${TMPDIR:-/tmp}/flatness.XXXXXX")
    own_dir=$BENCH_DIR
fi
report=$(mktemp "${TMPDIR:-/tmp}/flatness-report.XXXXXX")
samples=$(mktemp "${TMPDIR:-/tmp}/flatness-samples.XXXXXX")
bench_pid=
cleanup() {
    if [[ -n $bench_pid ]] && kill -0 "$bench_pid" 2>/dev/null; then
        kill -INT "$bench_pid" 2>/dev/null || true
        wait "$bench_pid" 2>/dev/null || true
    fi
    rm -f "$report" "$samples"
    if [[ -n $own_dir ]]; then rm -rf "$own_dir"; fi
}
trap cleanup EXIT

command=("$bin" bench --duration-secs "$duration" --progress --dir "$BENCH_DIR" "$@")
echo "command: ${command[*]}"
echo "cores: $(nproc)  load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s.%N)
"${command[@]}" >"$report" 2>&1 &
bench_pid=$!

mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
# kB field of /proc/<pid>/status, in bytes (0 when gone).
status_bytes() {
    awk -v key="$2:" '$1 == key { print $2 * 1024; found = 1 } END { if (!found) print 0 }' \
        "/proc/$1/status" 2>/dev/null || echo 0
}

header_done=
next=$interval
while kill -0 "$bench_pid" 2>/dev/null; do
    now=$(date +%s.%N)
    elapsed=$(awk -v a="$now" -v b="$start" 'BEGIN { printf "%.3f", a - b }')
    wait_for=$(awk -v n="$next" -v e="$elapsed" 'BEGIN { d = n - e; printf "%.3f", (d > 0 ? d : 0) }')
    sleep "$wait_for"
    kill -0 "$bench_pid" 2>/dev/null || break
    t=$next
    next=$((next + interval))
    if ((t > duration)); then break; fi
    rss=$(status_bytes "$bench_pid" VmRSS)
    anon=$(status_bytes "$bench_pid" RssAnon)
    mapfile -t node_dirs < <(find "$BENCH_DIR" -mindepth 2 -maxdepth 2 -name 'node-*' -type d | sort -V)
    wal=()
    total=0
    for d in "${node_dirs[@]}"; do
        b=$(du -sb "$d" 2>/dev/null | cut -f1)
        b=${b:-0}
        wal+=("$b")
        total=$((total + b))
    done
    load=$(cut -d' ' -f1 /proc/loadavg)
    # The bench's latest progress line: writes/s in its last second, entries held in memory.
    read -r wps in_memory < <(awk '/ writes\/s .* log in memory / { w = $3; m = $(NF - 1) }
        END { print (w == "" ? 0 : w), (m == "" ? 0 : m) }' "$report")
    if [[ -z $header_done ]]; then
        printf '%6s %9s %9s' "t_s" "rss_MiB" "anon_MiB"
        for d in "${node_dirs[@]}"; do printf ' %11s' "$(basename "$d")_MiB"; done
        printf ' %10s %10s %12s %6s\n' "wal_MiB" "writes/s" "log_entries" "load1"
        header_done=1
    fi
    printf '%6d %9s %9s' "$t" "$(mib "$rss")" "$(mib "$anon")"
    for b in "${wal[@]}"; do printf ' %11s' "$(mib "$b")"; done
    printf ' %10s %10s %12s %6s\n' "$(mib "$total")" "$wps" "$in_memory" "$load"
    echo "$t $rss $anon $total ${wal[*]}" >>"$samples"
done

wait "$bench_pid" && status=0 || status=$?
bench_pid=

echo
echo "first minute (t <= 60 s) vs last minute (t > $((duration - 60)) s), means in MiB;"
echo "then the lowest and highest sample from t >= $warmup s:"
awk -v last_from=$((duration - 60)) -v warmup="$warmup" '
    function show(name, col,   fm, lm) {
        fm = fn ? f[col] / fn / 1048576 : 0
        lm = ln ? l[col] / ln / 1048576 : 0
        printf "  %-14s first %9.1f  last %9.1f  change %+8.1f   range %9.1f .. %9.1f\n",
            name, fm, lm, lm - fm, lo[col] / 1048576, hi[col] / 1048576
    }
    {
        cols = NF
        if ($1 <= 60) { fn++; for (i = 2; i <= NF; i++) f[i] += $i }
        if ($1 > last_from) { ln++; for (i = 2; i <= NF; i++) l[i] += $i }
        if ($1 >= warmup) {
            for (i = 2; i <= NF; i++) {
                if (!(i in lo) || $i < lo[i]) lo[i] = $i
                if (!(i in hi) || $i > hi[i]) hi[i] = $i
            }
        }
    }
    END {
        show("rss", 2); show("rss anon", 3); show("wal total", 4)
        for (i = 5; i <= cols; i++) show("wal node-" (i - 4), i)
    }' "$samples"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "bench report (progress lines left out):"
grep -v ' writes/s .* log in memory ' "$report" || true
exit "$status"
