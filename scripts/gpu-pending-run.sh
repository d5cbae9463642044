#!/usr/bin/env bash
# The GPU measurements that the commits listed in docs/benchmarks.md ("Not
# yet run on a GPU", issue 15's section) wait for, in device calls of at
# most 600 s each. Stage first, here:
#   GPU_TARGETS="test_gpu livsearch bench_train search_throughput" BUILD_DIR=build-gpu scripts/gpu-check.sh build
# (the suite's sticky-error case runs the livsearch binary staged beside test_gpu)
# then on the GPU box (carry .gpu, or .gpu-pack where the build says it packed), one part per call:
#   scripts/gpu-pending-run.sh suite      # the GPU suite (about 150 s)
#   scripts/gpu-pending-run.sh switches   # the defaults against the settings before them, in one binary (about 200 s)
#   scripts/gpu-pending-run.sh timeline   # where the step and the shared device lose time (about 200 s)
# Logs land in $OUT (or ./gpu-out); `python3 bench/switch_table.py
# OUT/switches.log` makes the switches' tables. Numbers go to
# docs/benchmarks.md with the date, GPU, commit and the command of each line.
set -uo pipefail
cd "$(dirname "$0")/.."
part=${1:-}
case "$part" in
  suite | switches | timeline) ;;
  *)
    echo "usage: scripts/gpu-pending-run.sh suite|switches|timeline" >&2
    exit 2
    ;;
esac
dist=${STAGE_DIR:-.gpu}
scripts/gpu-unpack.sh "$dist"
out=${OUT:-$PWD/gpu-out}
mkdir -p "$out"
export LD_LIBRARY_PATH="$(cd "$dist" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu.txt"

moe_pair="--presets none --genomes bench/moe_step/moe-8x256-top2.json,bench/moe_step/swiglu-512.json --mfu-row=false"
moe_pair_d256="--presets none --genomes bench/moe_step/moe-8x512-top2-d256.json,bench/moe_step/swiglu-1024-d256.json --mfu-row=false --seq 512 --batch 32"
d128="--d-models 128 --layers 6 --seq 256 --batch 64 --mfu-row=false --steps 100"
throughput="--config bench/search_quality/gpu.json --workers 1,4"

# name, environment, command: the whole output into the part's log under a
# header; the tables (not the JSON lines) to stdout as well.
measure() {
  local name=$1 env=$2; shift 2
  echo "=== $name: ${env:-default} $*" | tee -a "$out/$part.log"
  env $env timeout 240 "$@" 2>&1 | tee -a "$out/$part.log" | grep -vE "^(JSON|TIMELINE|PROFILE) |^  (preset|sampled) "
}

case "$part" in
  suite)
    timeout 400 "$dist/test_gpu" -d 2>&1 | tail -n 40 | tee "$out/suite.log"
    ;;
  switches)
    # The defaults against the settings before programmatic edges and the
    # MoE split rule (LIVSEARCH_CUDA_PDL=0 LIVSEARCH_MOE_SPLIT=0), each twice,
    # interleaved, so drift shows as spread.
    old="LIVSEARCH_CUDA_PDL=0 LIVSEARCH_MOE_SPLIT=0"
    for round in 1 2; do
      measure "moe pair d128 round $round" "$old" "$dist/bench_train" $moe_pair --steps 300
      measure "moe pair d128 round $round" "" "$dist/bench_train" $moe_pair --steps 300
      measure "moe pair d256 round $round" "$old" "$dist/bench_train" $moe_pair_d256 --steps 100
      measure "moe pair d256 round $round" "" "$dist/bench_train" $moe_pair_d256 --steps 100
      measure "throughput round $round" "$old" "$dist/search_throughput" $throughput
      measure "throughput round $round" "" "$dist/search_throughput" $throughput
    done
    measure "presets d128" "$old" "$dist/bench_train" $d128
    measure "presets d128" "" "$dist/bench_train" $d128
    ;;
  timeline)
    # Rates while tracing are not the tables' rates: the split is what counts.
    "$dist/search_throughput" $throughput --kernel-timeline 2>&1 | tee "$out/timeline-throughput.log" | tail -n 40
    "$dist/bench_train" $moe_pair --steps 300 --kernel-timeline 2>&1 | tee "$out/timeline-moe.log" | tail -n 60
    "$dist/bench_train" --presets transformer,lfm2,striped-mamba $d128 --kernel-timeline 2>&1 \
      | tee "$out/timeline-d128.log" | tail -n 90
    "$dist/bench_train" --presets none --steps 30 --kernel-timeline 2>&1 | tee "$out/timeline-mfu.log" | tail -n 30
    ;;
esac
