#!/usr/bin/env bash
# On the GPU box: unpack the staged build that `scripts/gpu-check.sh build`
# packed into .gpu-pack/ (a staged folder over the device call's 64 MiB
# limit travels compressed) into the staging folder, unless it is there.
#   scripts/gpu-unpack.sh [folder]     # default: $STAGE_DIR or .gpu
set -euo pipefail
cd "$(dirname "$0")/.."
dist=${1:-${STAGE_DIR:-.gpu}}
base=$(basename "$dist")
pack=.gpu-pack/${base#.}.tar.xz
[ -f "$pack" ] || exit 0
for program in test_gpu livsearch bench_train search_throughput; do
  [ -e "$dist/$program" ] && exit 0  # staged already (carried as a folder, or unpacked before)
done
mkdir -p "$dist"
tar xJf "$pack" -C "$dist"
