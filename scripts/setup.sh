#!/usr/bin/env bash
# Install what livsearch needs to build and test on Debian 12 (bookworm) or a
# close relative, skipping packages that are already installed. Safe to run
# again. Uses sudo only when not run as root.
set -euo pipefail

packages=(
  g++ cmake make              # C++20 compiler and build
  libtbb-dev                  # CPU backend parallelism
  libsqlite3-dev              # the results database
  nlohmann-json3-dev          # JSON
  libcxxopts-dev              # command-line parsing
  doctest-dev                 # tests
  libpagmo-dev                # non-dominated sorting and hypervolume
  bible-kjv                   # regenerates data/kjv.txt (see data/README.md)
  python3-torch               # the PyTorch cross-check of every operator (tests/torch/)
  chromium                    # renders `livsearch report` pages headless in the tests (tests/browser/)
  libopenmpi-dev openmpi-bin  # `livsearch search --mpi` over several processes and nodes (search/mpi/)
)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
  echo "setup.sh: no dpkg/apt-get here; install these (or your system's equivalents) by hand:" >&2
  echo "  ${packages[*]}" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup.sh: all ${#packages[@]} packages are installed"
  exit 0
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup.sh: not root and no sudo; install: ${missing[*]}" >&2; exit 1; }
  as_root=(sudo)
fi
echo "setup.sh: installing ${missing[*]}"
"${as_root[@]}" apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
