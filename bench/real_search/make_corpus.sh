#!/usr/bin/env bash
# The English corpus of the real search (docs/benchmarks.md, "Search budget"):
# the reStructuredText sources of the Python 3.11 documentation (tutorial,
# HOWTOs, FAQ, library and language reference), about 7.9 MB of technical
# English prose with code, from Debian's python3.11-doc. Not the shipped
# corpus (data/kjv.txt), so the search is tried on text it was not tuned on.
#   bench/real_search/make_corpus.sh [OUT_FILE]   (default .gpu/data/python-docs.txt)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-.gpu/data/python-docs.txt}
src=/usr/share/doc/python3.11/html/_sources
if [ ! -d "$src" ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get install -y python3.11-doc >/dev/null
fi
mkdir -p "$(dirname "$out")"
(cd "$src" && find tutorial howto faq library reference glossary.rst.txt -name '*.rst.txt' | LC_ALL=C sort | xargs cat) >"$out"
wc -c "$out"
