#!/usr/bin/env bash
# The report of a small real search (tests/report/report_search.json), opened
# in headless Chromium: the page's script runs to its end with no JavaScript
# error and no request refused by its Content-Security-Policy, every plot and
# the front table are in the DOM, sorting, opening a row and hovering a point
# work (interaction.js, run on a copy of the page), and a screenshot is not
# blank (png_not_blank.py). Exit 77 (ctest: skipped) without Chromium or python3.
#
#   render_report.sh LIVSEARCH_BINARY SOURCE_DIR [SCREENSHOT.png]
#
# With a third argument the screenshot is kept there (docs/report.png is made so).
set -euo pipefail
livsearch=$1
source_dir=$2
keep_png=${3:-}

browser=""
for candidate in chromium chromium-browser google-chrome; do
  if command -v "$candidate" >/dev/null; then browser=$candidate; break; fi
done
if [ -z "$browser" ]; then echo "SKIP: no chromium (scripts/setup.sh installs Debian's chromium)"; exit 77; fi
if ! command -v python3 >/dev/null; then echo "SKIP: no python3 for the screenshot check"; exit 77; fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cd "$source_dir"
"$livsearch" search tests/report/report_search.json --db "$work/run.db" >"$work/search.log" 2>&1 ||
  { cat "$work/search.log" >&2; fail "the search failed"; }
"$livsearch" report --db "$work/run.db" --out "$work/report.html" || fail "livsearch report failed"

# A fresh profile, no first-run pages, and every host name unresolvable: the
# page has nothing to fetch, and if it tried, nothing would answer.
flags=(--headless --disable-gpu --no-sandbox --hide-scrollbars --no-first-run --disable-extensions
       --user-data-dir="$work/profile" --host-resolver-rules="MAP * ~NOTFOUND"
       --enable-logging=stderr --v=0 --virtual-time-budget=5000)

timeout 120 "$browser" "${flags[@]}" --dump-dom "file://$work/report.html" >"$work/dom.html" 2>"$work/console.log" ||
  { tail -20 "$work/console.log" >&2; fail "chromium could not render the report"; }
if grep -E 'CONSOLE.*(Uncaught|Error)|Refused to|ERR_NAME_NOT_RESOLVED' "$work/console.log"; then
  fail "the browser console shows an error or a refused request (above)"
fi
dom=$(cat "$work/dom.html")
count() { grep -o -- "$1" <<<"$dom" | wc -l; }
[ "$(count 'data-report-ready="1"')" -eq 1 ] || fail "the page's script did not run to its end"
[ "$(count 'data-js-error="1"')" -eq 0 ] || fail "the page reported a JavaScript error: $(grep -o '<div id="js-errors">[^<]*' <<<"$dom")"
[ "$(count 'class="plot scatter"')" -eq 3 ] || fail "expected 3 scatter plots (3 objectives)"
[ "$(count 'class="plot parallel"')" -eq 1 ] || fail "expected the parallel-coordinates plot"
[ "$(count 'class="plot line"')" -eq 2 ] || fail "expected 2 hypervolume plots"
[ "$(count 'class="plot bars"')" -eq 1 ] || fail "expected the candidates-per-rung plot"
[ "$(count 'id="front-table"')" -eq 1 ] || fail "expected the front table"
[ "$(count '<tbody class="member"')" -ge 1 ] || fail "the front table has no row"
[ "$(count 'class="genome"')" -ge 1 ] || fail "expected genome pictures"
for id in overview pareto parallel progress rungs front composition failures; do
  [ "$(count "<section id=\"$id\"")" -eq 1 ] || fail "section $id missing"
done

# Interaction: the same page with interaction.js appended.
python3 - "$work/report.html" "$source_dir/tests/browser/interaction.js" "$work/interaction.html" <<'PY'
import sys
page, script, out = sys.argv[1:]
html = open(page, encoding="utf-8").read()
html = html.replace("</body>", "<script>" + open(script, encoding="utf-8").read() + "</script></body>")
open(out, "w", encoding="utf-8").write(html)
PY
timeout 120 "$browser" "${flags[@]}" --dump-dom "file://$work/interaction.html" >"$work/dom2.html" 2>"$work/console2.log" ||
  fail "chromium could not render the interaction page"
result=$(grep -o 'data-selftest="[^"]*"' "$work/dom2.html" || true)
[ "$result" = 'data-selftest="ok"' ] || fail "interaction check: ${result:-no result}"

timeout 120 "$browser" "${flags[@]}" --window-size=1280,2200 --screenshot="$work/report.png" \
  "file://$work/report.html" >/dev/null 2>"$work/console3.log" || fail "chromium could not take a screenshot"
python3 "$source_dir/tests/browser/png_not_blank.py" "$work/report.png" || fail "the screenshot is blank"
if [ -n "$keep_png" ]; then cp "$work/report.png" "$keep_png"; fi
echo "report rendered: $(wc -c <"$work/report.html") bytes, no console error, plots and table present, screenshot not blank"
