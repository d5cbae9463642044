#!/usr/bin/env bash
# scripts/gpu-unpack.sh: a packed staging folder is unpacked where its
# programs are missing, and a folder that has them is left as it is.
set -euo pipefail
source_dir=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/scripts" "$work/stage" "$work/.gpu-pack"
cp "$source_dir/scripts/gpu-unpack.sh" "$work/scripts/"
echo packed > "$work/stage/test_gpu"
tar cJf "$work/.gpu-pack/gpu.tar.xz" -C "$work/stage" .
fail() { echo "FAIL: $*" >&2; exit 1; }

"$work/scripts/gpu-unpack.sh"  # the default folder, .gpu
[ "$(cat "$work/.gpu/test_gpu")" = packed ] || fail "the pack was not unpacked into .gpu"
echo local > "$work/.gpu/test_gpu"
"$work/scripts/gpu-unpack.sh" .gpu
[ "$(cat "$work/.gpu/test_gpu")" = local ] || fail "a staged folder with its programs was overwritten"
(cd "$work" && STAGE_DIR=.gpu-other scripts/gpu-unpack.sh)
[ ! -e "$work/.gpu-other" ] || fail "a folder without a pack of its name was made"
echo ok
