#!/usr/bin/env bash
# Issue 21's run on a machine with several GPUs, in one call, from the
# repository root, with the build staged by `scripts/gpu-check.sh build`
# (GPU_TARGETS="test_gpu livsearch search_throughput") carried as .gpu/ (or
# packed, as .gpu-pack/, where the build says so):
#
#   bench/multi_gpu/run.sh            # everything below; output under $OUT (or ./multi-gpu-out)
#
# 1. The GPU suite once per GPU (CUDA_VISIBLE_DEVICES=i), so every GPU is known good.
# 2. A search with --devices all and the same search on cuda:0 alone: every
#    GPU must have taken evaluations, and bench/multi_gpu/compare_runs.py
#    says what differs between the two databases (GPU runs repeat bit for
#    bit on one device).
# 3. With mpirun on the PATH (the staged build has no MPI unless built with
#    LIVSEARCH_MPI=ON and the box has OpenMPI): the same search with one rank
#    per GPU.
# 4. The scaling table: bench/search_throughput --gpus 1,2,4,8 (as many as
#    there are) at d_model 128 and 512.
# SKIP_SUITE=1, SKIP_SEARCH=1, SKIP_SCALING=1 leave a part out; WORKERS sets
# --workers (default 4); GENOMES the scaling list's length (default 32).
set -uo pipefail
cd "$(dirname "$0")/../.."
scripts/gpu-unpack.sh .gpu  # a staged build carried packed (.gpu-pack/)
out=${OUT:-$PWD/multi-gpu-out}
mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/.gpu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
gpus=$(nvidia-smi -L | wc -l)
workers=${WORKERS:-4}
nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader | tee "$out/gpus.txt"
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%F)" | tee -a "$out/gpus.txt"
status=0

if [ "${SKIP_SUITE:-0}" != 1 ]; then
  for ((i = 0; i < gpus; i++)); do
    CUDA_VISIBLE_DEVICES=$i .gpu/test_gpu >"$out/test_gpu_$i.log" 2>&1
    rc=$?
    echo "GPU $i: test_gpu exit $rc ($(tail -n 3 "$out/test_gpu_$i.log" | grep -m1 'test cases' || echo 'no summary'))"
    [ $rc -eq 0 ] || status=1
  done
fi

if [ "${SKIP_SEARCH:-0}" != 1 ]; then
  config=bench/multi_gpu/search.json
  .gpu/livsearch search "$config" --devices all --workers "$workers" --db "$out/all.db" >"$out/search_all.log" 2>&1 ||
    status=1
  .gpu/livsearch search "$config" --devices cuda:0 --workers "$workers" --db "$out/one.db" >"$out/search_one.log" 2>&1 ||
    status=1
  tail -n 2 "$out/search_all.log" "$out/search_one.log"
  python3 bench/multi_gpu/compare_runs.py "$out/one.db" "$out/all.db" --expect-devices "$gpus" | tee "$out/compare.txt" ||
    status=1
  if command -v mpirun >/dev/null; then
    mpirun --allow-run-as-root -n "$gpus" .gpu/livsearch search "$config" --mpi --workers "$workers" \
      --db "$out/mpi.db" >"$out/search_mpi.log" 2>&1 || status=1
    python3 bench/multi_gpu/compare_runs.py "$out/one.db" "$out/mpi.db" --expect-devices "$gpus" |
      tee "$out/compare_mpi.txt" || status=1
  else
    echo "no mpirun on this machine: the MPI search is not run here"
  fi
fi

if [ "${SKIP_SCALING:-0}" != 1 ]; then
  counts=""
  for g in 1 2 4 8; do [ "$g" -le "$gpus" ] && counts="${counts:+$counts,}$g"; done
  for config in bench/multi_gpu/scaling_d128.json bench/multi_gpu/scaling_d512.json; do
    name=$(basename "$config" .json)
    .gpu/search_throughput --config "$config" --gpus "$counts" --workers "$workers" --genomes "${GENOMES:-32}" \
      >"$out/$name.log" 2>&1 || status=1
    grep -E '^(gpus|[0-9])' "$out/$name.log"
  done
fi
exit $status
