#!/usr/bin/env bash
# The Jepsen campaign of issue 14: one run of kommander-jepsen per seed, both workloads, the
# whole nemesis schedule (partitions, SIGKILL of a minority and of a majority, SIGSTOP), one
# after the other (they share the namespaces and the bridge). Run as root from the workspace:
#
#   jepsen/campaign.sh [FIRST_SEED] [RUNS] [SECONDS]     # default: 101 11 180
#
# The binaries are copied first (a rebuild during the campaign changes nothing). Each run's
# report goes to $OUT/seed-<seed>.txt and one line per run to $OUT/summary.txt; a passing
# run's data directories are removed (its node logs kept), a failing run's directory is kept
# whole under /tmp/kommander-jepsen/seed-<seed>. Exit 0 when every run passed.
set -uo pipefail
cd "$(dirname "$0")/.."
first=${1:-101}
runs=${2:-11}
seconds=${3:-180}
OUT=${OUT:-/tmp/kommander-jepsen/campaign}
mkdir -p "$OUT/bin"
cp target/release/kommander-jepsen target/release/kommander-kv "$OUT/bin/"
status=0
for ((seed = first; seed < first + runs; seed++)); do
    report="$OUT/seed-$seed.txt"
    started=$(date -u +%H:%M:%S)
    "$OUT/bin/kommander-jepsen" --seed "$seed" --seconds "$seconds" >"$report" 2>&1
    code=$?
    echo "seed=$seed seconds=$seconds started=$started exit=$code" >>"$OUT/summary.txt"
    if [[ $code -eq 0 ]]; then
        rm -rf /tmp/kommander-jepsen/seed-"$seed"/node*/data
    else
        status=1
    fi
done
exit $status
