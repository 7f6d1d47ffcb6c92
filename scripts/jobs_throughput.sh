#!/usr/bin/env bash
# Cells per hour of a small-model grid: `bench run --jobs 2` with 1 libtorch
# thread per cell against `--jobs 1` with 2 threads, each on a fresh
# database and the same warm feature cache. A benchmark, not a test: run it
# on an otherwise idle machine (see docs/performance.md, "Cells in parallel").
#
#   scripts/jobs_throughput.sh [BENCH] [REPEATS]      (ROWS=3000 for a quick check that it runs)
#
# BENCH defaults to target/release/bench; REPEATS (default 3) alternates the
# two settings so that drift on the machine falls on both.
set -euo pipefail
BENCH=${1:-target/release/bench}
REPEATS=${2:-3}
BENCH=$(realpath "$BENCH")
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export MTLBENCH_CACHE="$work/cache"

# Two small models x two strategies x two seeds on toy data: 8 cells of a few seconds.
grid() {
cat <<TOML
name = "jobs-throughput"
[data]
kind = "toy"
rows = ${ROWS:-60000}
users = 500
items = 800
tasks = ["click", "like"]
[train]
epochs = 3
batch_size = 512
patience = 3
threads = $1
[models.tower]
hidden = [32]
[models.shared-bottom]
bottom = [64]
[models.mmoe]
experts = 4
expert_hidden = [32]
[grid]
models = ["shared-bottom", "mmoe"]
strategies = ["equal", "uncertainty"]
seeds = [1, 2]
TOML
}
grid 1 > "$work/t1.toml"
grid 2 > "$work/t2.toml"
"$BENCH" data inspect "$work/t1.toml" > /dev/null   # build the feature cache once
cells=$("$BENCH" run "$work/t1.toml" --dry-run | head -1 | sed -E 's/.*: ([0-9]+) cells/\1/')

one() { # jobs threads -> seconds
    local db="$work/db-$1-$2-$RANDOM.sqlite" t0 t1
    t0=$(date +%s.%N)
    "$BENCH" --db "$db" run "$work/t$2.toml" --jobs "$1" --quiet > /dev/null
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }' 
}

printf '%-22s %8s %12s\n' setting seconds cells/hour
a_total=0; b_total=0
for r in $(seq 1 "$REPEATS"); do
    a=$(one 2 1); b=$(one 1 2)
    a_total=$(awk -v x="$a_total" -v y="$a" 'BEGIN { print x + y }')
    b_total=$(awk -v x="$b_total" -v y="$b" 'BEGIN { print x + y }')
    printf '%-22s %8.1f %12.0f\n' "jobs 2 x 1 thread" "$a" "$(awk -v c="$cells" -v s="$a" 'BEGIN { print c * 3600 / s }')"
    printf '%-22s %8.1f %12.0f\n' "jobs 1 x 2 threads" "$b" "$(awk -v c="$cells" -v s="$b" 'BEGIN { print c * 3600 / s }')"
done
printf 'over %d repeats of %d cells: jobs 2 x 1 thread is %.2fx the cells per hour of jobs 1 x 2 threads (%d cores here)\n' \
    "$REPEATS" "$cells" "$(awk -v a="$a_total" -v b="$b_total" 'BEGIN { print b / a }')" "$(nproc)"
