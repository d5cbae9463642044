#!/usr/bin/env bash
# The fast tests again, built with AddressSanitizer and UBSan (LIVSEARCH_SANITIZE),
# so that a memory error or undefined behaviour fails CI, not just a wrong
# answer. A subset, to stay inside CI's time: the genome, database, common and
# search suites and every bad-input case through a sanitized livsearch binary
# (label bad_input). The evaluator's kernels are covered by their own
# sanitizer runs by hand (see docs/architecture.md, "Sanitizers").
# Usage: scripts/sanitize-check.sh [BUILD_DIR]   (default build-asan)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-asan}
start=$(date +%s)
cmake -S . -B "$build" -DLIVSEARCH_CUDA=OFF -DLIVSEARCH_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug \
  -DLIVSEARCH_BUILD_BENCH=OFF
cmake --build "$build" -j"$(nproc)" --target livsearch bad_input_case test_common test_genome test_db test_search
built=$(date +%s)
# UBSan only reports by default; halt_on_error makes a finding fail its test.
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1
ctest --test-dir "$build" --output-on-failure -j"$(nproc)" -L '^(common|genome|db|search|bad_input)$'
done_at=$(date +%s)
echo "sanitizer check: build $((built - start)) s, tests $((done_at - built)) s"
