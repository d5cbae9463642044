#!/usr/bin/env bash
# The real search of docs/benchmarks.md ("Search budget"), on a GPU box from
# the repository root, with the build staged by scripts/gpu-check.sh build and
# the corpus by make_corpus.sh:
#   bench/real_search/run.sh nsga2|random [WORKERS]
# Writes $OUT/real-<algorithm>.db and the search log, status and pareto outputs.
set -euo pipefail
cd "$(dirname "$0")/../.."
algorithm=${1:?nsga2 or random}
workers=${2:-4}
out=${OUT:-$PWD/gpu-out}
dist=${STAGE_DIR:-.gpu}
mkdir -p "$out"
export LD_LIBRARY_PATH="$(cd "$dist" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
db="$out/real-$algorithm.db"
rm -f "$db" "$db-wal" "$db-shm"
start=$SECONDS
"$dist/livsearch" search "bench/real_search/$algorithm.json" --db "$db" --workers "$workers" \
  2>&1 | tee "$out/real-$algorithm.log" | grep -v '^  \[' || true
echo "wall ${algorithm}: $((SECONDS - start)) s" | tee -a "$out/real-$algorithm.log"
"$dist/livsearch" status --db "$db" | tee "$out/real-$algorithm-status.txt"
"$dist/livsearch" status --db "$db" --format json >"$out/real-$algorithm-status.json"
"$dist/livsearch" pareto --db "$db" | tee "$out/real-$algorithm-pareto.txt"
"$dist/livsearch" pareto --db "$db" --format json >"$out/real-$algorithm-pareto.json"
"$dist/livsearch" pareto --db "$db" --fidelity 0.3 >"$out/real-$algorithm-pareto-search.txt" || true
