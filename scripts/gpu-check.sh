#!/usr/bin/env bash
# Build livsearch for a GPU box and run the GPU test suite and the benchmarks.
#
#   scripts/gpu-check.sh build   # here (no GPU needed): build into .gpu/ for sm_90,
#                                # bundle the shared libraries a bare GPU box lacks
#                                # (TBB, pagmo, Boost serialization) with rpath $ORIGIN
#   scripts/gpu-check.sh run     # on the GPU box, from the repository root:
#                                # test_gpu, the CPU-vs-GPU eval check, then benchmarks
#   scripts/gpu-check.sh         # both, on a machine that has a GPU and the build tools
#
# Outputs land in $OUT (or ./gpu-out) as gpu-tests.log and bench.log.
# GPU_TEST_ARGS passes doctest options to test_gpu (e.g. -tc='*attention*').
set -euo pipefail
cd "$(dirname "$0")/.."
stage=${1:-all}
arch=${CUDA_ARCH:-90}
dist=${STAGE_DIR:-.gpu}  # STAGE_DIR: another folder, so that several builds can be staged side by side
build_dir=${BUILD_DIR:-build-gpu}  # BUILD_DIR, GPU_TARGETS and JOBS override the defaults
out=${OUT:-$PWD/gpu-out}

build() {
  # No MPI in the staged build: the bare GPU box has no MPI library to load
  # (LIVSEARCH_MPI=ON stages a binary that needs libmpi there).
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$arch" \
    -DLIVSEARCH_MPI="${LIVSEARCH_MPI:-OFF}" \
    -DCMAKE_BUILD_RPATH='$ORIGIN' -DCMAKE_SKIP_BUILD_RPATH=OFF -DCMAKE_BUILD_WITH_INSTALL_RPATH=OFF >/dev/null
  # Only what runs on the GPU box (the test suite first: it needs the least).
  local targets=(${GPU_TARGETS:-test_gpu livsearch})
  if [ -z "${GPU_TARGETS:-}" ]; then
    # The target list is read once: `grep -q` on a pipe would stop reading
    # early and, under pipefail, turn a found target into a failed test.
    local available
    available=$(cmake --build "$build_dir" --target help)
    for t in bench_train bench_gemm bench_attention zdt latency recall; do
      grep -qx "\.\.\. $t" <<<"$available" && targets+=("$t")
    done
  fi
  cmake --build "$build_dir" -j"${JOBS:-2}" --target "${targets[@]}"
  rm -rf "$dist" && mkdir -p "$dist"
  for exe in "${targets[@]}"; do
    f=$(find "$build_dir" -maxdepth 3 -type f -name "$exe" -perm -u+x | head -n1)
    [ -n "$f" ] && cp "$f" "$dist/"
  done
  # Libraries that a bare CUDA box does not have; everything else (libc,
  # libstdc++, CUDA runtime, cuBLAS, SQLite) is present there.
  for exe in "$dist"/*; do
    ldd "$exe" | awk '/=>/ {print $3}' | grep -E 'libtbb|libpagmo|libboost' || true
  done | sort -u | while read -r lib; do cp -L "$lib" "$dist/"; done
  # --kernel-timeline (bench_train, search_throughput) opens CUPTI at run
  # time, so ldd does not list it: the copy of the toolkit they were built with.
  if [ -x "$dist/bench_train" ] || [ -x "$dist/search_throughput" ]; then
    local cuda_root
    cuda_root=$(dirname "$(dirname "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)")")
    for lib in "$cuda_root"/lib64/libcupti.so.13 "$cuda_root"/lib/libcupti.so.13 \
               "$cuda_root"/extras/CUPTI/lib64/libcupti.so.13; do
      [ -f "$lib" ] && { cp -L "$lib" "$dist/"; break; }
    done
  fi
  for exe in "$dist"/*; do
    patchelf --set-rpath '$ORIGIN' "$exe" 2>/dev/null || true
  done
  cp -r bench/*.py "$dist/" 2>/dev/null || true
  du -sh "$dist"
  # Strip the staged programs and libraries, and past 40 MiB pack them: a
  # device call carries at most 64 MiB with the working tree
  # (scripts/gpu-unpack.sh, which `run` calls first, unpacks them there).
  strip --strip-unneeded "$dist"/* 2>/dev/null || true
  local base pack
  base=$(basename "$dist")
  pack=.gpu-pack/${base#.}.tar.xz
  rm -f "$pack"
  if [ "$(du -sm "$dist" | cut -f1)" -gt 40 ]; then
    mkdir -p .gpu-pack
    tar cJf "$pack" -C "$dist" .
    echo "staged $(du -sh "$dist" | cut -f1), packed into $pack ($(du -sh "$pack" | cut -f1)):" \
      "carry .gpu-pack instead of $dist"
  fi
}

run() {
  scripts/gpu-unpack.sh "$dist"
  mkdir -p "$out"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
  export LD_LIBRARY_PATH="$(cd "$dist" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  status=0
  if [ "${SKIP_GPU_TESTS:-0}" = 1 ]; then
    echo "test_gpu skipped (SKIP_GPU_TESTS=1)"
  elif [ -x "$dist/test_gpu" ]; then
    # Failures, the training-curve MESSAGEs and the summary; -d prints each test's seconds.
    "$dist/test_gpu" -d ${GPU_TEST_ARGS:-} 2>&1 | tee "$out/gpu-tests.log" || status=1
  else
    echo "no test_gpu in $dist (build without CUDA?)" | tee "$out/gpu-tests.log"; status=1
  fi
  [ "${SKIP_CHECKS:-0}" = 1 ] || checks || status=1
  [ "${SKIP_BENCH:-0}" = 1 ] && return $status
  # Training speed (docs/benchmarks.md, "Training speed"): livsearch, then the
  # PyTorch reference eager and compiled. BENCH_BUDGET (seconds, 0: none) bounds
  # the whole benchmark stage; torch.compile's rows get what is left of it.
  local bench_start=$SECONDS budget=${BENCH_BUDGET:-0}
  if [ -x "$dist/bench_train" ]; then
    "$dist/bench_train" --profile 2>&1 | tee "$out/bench.log" || status=1
  fi
  # Kernel-level benchmarks: how to feed the GEMMs, and attention alone.
  for exe in bench_gemm bench_attention; do
    [ -x "$dist/$exe" ] && { "$dist/$exe" 2>&1 | tee "$out/$exe.log" || status=1; }
  done
  if [ -f "$dist/torch_reference.py" ] && python3 -c "import torch" 2>/dev/null; then
    # deadline N: seconds still free of the budget minus a margin, at least 1 (0: no budget).
    deadline() { [ "$budget" -gt 0 ] && echo $(( (budget - (SECONDS - bench_start) - $1) / $2 > 1 ? (budget - (SECONDS - bench_start) - $1) / $2 : 1 )) || echo 0; }
    PYTHONUNBUFFERED=1 python3 "$dist/torch_reference.py" --mode eager --deadline "$(deadline 20 3)" \
      2>&1 | tee "$out/bench-torch-eager.log" || status=1
    # TORCH_PRECOMPILE=N (default 12) warms torch.compile's caches with N rows
    # at once first, so every compile row fits the budget (see torch_reference.py).
    PYTHONUNBUFFERED=1 python3 "$dist/torch_reference.py" --mode compile --deadline "$(deadline 15 1)" \
      --precompile "${TORCH_PRECOMPILE:-12}" --row-timeout "${TORCH_ROW_TIMEOUT:-300}" \
      2>&1 | tee "$out/bench-torch-compile.log" || status=1
  fi
  return $status
}

# Issue checks that need the GPU: every preset's held-out perplexity on cuda
# against the CPU backend for the same config and seed; decode latency against
# context length, measured twice in separate processes; recall on attention vs
# gated convolutions. PRESETS and CHECK_CONFIG override the defaults.
checks() {
  local config=${CHECK_CONFIG:-configs/quick.json} ok=0
  for preset in ${PRESETS:-transformer griffin striped-mamba lfm2 linear-transformer hyena-like mamba2-hybrid gated-deltanet-hybrid}; do
    for device in cuda cpu; do
      "$dist/livsearch" eval --preset "$preset" --config "$config" --device "$device" --format json \
        >"$out/eval-$preset-$device.json" 2>"$out/eval-$preset-$device.err" || ok=1
    done
    python3 - "$out/eval-$preset-cuda.json" "$out/eval-$preset-cpu.json" "$preset" <<'PY' | tee -a "$out/checks.log" || ok=1
import json, sys
# eval --format json: one object per architecture, here one with one seed.
gpu, cpu = (json.load(open(p))[0] for p in sys.argv[1:3])
g, c = (r["seeds"][0]["metrics"]["perplexity"] for r in (gpu, cpu))
rel = abs(g - c) / c
print(f"{sys.argv[3]:20s} perplexity cuda {g:.4f} cpu {c:.4f} rel diff {rel:.2%}  "
      f"wall cuda {gpu['seeds'][0]['wall_seconds']:.1f}s cpu {cpu['seeds'][0]['wall_seconds']:.1f}s")
sys.exit(0 if rel < 0.05 else 1)
PY
  done
  if [ -x "$dist/latency" ]; then
    for i in 1 2; do
      "$dist/latency" --device cuda 2>&1 | tee "$out/latency-$i.log" || ok=1
    done
  fi
  if [ -x "$dist/recall" ]; then
    "$dist/recall" --device cuda ${RECALL_ARGS:-} 2>&1 | tee "$out/recall.log" || ok=1
  fi
  return $ok
}

case "$stage" in
  build) build ;;
  run) run ;;
  all) build && run ;;
  *) echo "usage: $0 [build|run|all]" >&2; exit 2 ;;
esac
