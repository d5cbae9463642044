// The report's stylesheet: a light theme, system fonts (nothing to download),
// plots that scale with the window.
#include "report/page_style.hpp"

namespace livs::report {

const char* page_style() {
  return R"CSS(
:root { --ink: #1f2328; --muted: #656d76; --line: #d0d7de; --panel: #f6f8fa; --accent: #0969da;
        --front: #0969da; --other: #8c959f; --bad: #cf222e; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: var(--ink);
       background: #fff; }
header { padding: 18px 28px 10px; border-bottom: 1px solid var(--line); background: var(--panel); }
header h1 { margin: 0 0 4px; font-size: 22px; }
header .sub { color: var(--muted); }
nav { position: sticky; top: 0; z-index: 5; background: #fff; border-bottom: 1px solid var(--line);
      padding: 6px 28px; }
nav a { margin-right: 16px; color: var(--accent); text-decoration: none; font-weight: 500; }
nav a:hover { text-decoration: underline; }
main { padding: 0 28px 40px; max-width: 1500px; }
section { margin-top: 26px; }
h2 { font-size: 18px; border-bottom: 1px solid var(--line); padding-bottom: 4px; margin-bottom: 8px; }
h3 { font-size: 15px; margin: 18px 0 4px; }
h4 { margin: 6px 0; font-size: 14px; }
.caption, figcaption { color: var(--muted); font-size: 13px; }
figcaption { text-align: center; }
.empty { color: var(--muted); font-style: italic; }
.muted { color: var(--muted); }
code, pre { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 10px;
      overflow: auto; max-height: 420px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 18px; margin: 0 0 10px; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
.view-switch { margin: 0 0 10px; }
.view-switch button { font: inherit; font-size: 13px; padding: 3px 10px; border: 1px solid var(--line);
                      background: #fff; color: var(--ink); cursor: pointer; }
.view-switch button:first-child { border-radius: 6px 0 0 6px; }
.view-switch button:last-child { border-radius: 0 6px 6px 0; border-left: none; }
.view-switch button[aria-pressed="true"] { background: var(--accent); color: #fff; border-color: var(--accent); }
#pareto:not([data-view="all"]) .view-all, #pareto[data-view="all"] .view-top { display: none; }
.plots { display: flex; flex-wrap: wrap; gap: 14px; }
figure { margin: 0; flex: 0 1 460px; min-width: 300px; }
figure.wide { flex: 1 1 100%; max-width: 820px; }
svg.plot, svg.scatter-all { width: 100%; height: auto; display: block; }
.plot-area { fill: #fff; stroke: var(--line); }
.grid { stroke: #eaeef2; stroke-width: 1; }
.tick { font-size: 10.5px; fill: var(--muted); }
.axis-title { font-size: 12px; fill: var(--ink); }
.axis-line { stroke: var(--muted); stroke-width: 1.2; }
.pt { fill: var(--other); fill-opacity: .55; stroke: #fff; stroke-width: .6; cursor: pointer; }
.pt.low { fill: #afb8c1; fill-opacity: .5; }
.pt.front { fill: var(--front); fill-opacity: 1; stroke: #fff; stroke-width: 1; }
.pt.infeasible { fill: #fff; fill-opacity: 1; stroke: var(--bad); stroke-width: 1.3; }
.pt.front.infeasible { fill: #ffd8d3; }
.pt.preset, .pt.finalist { stroke: var(--ink); stroke-width: 1.4; }
.pt.hl, .pc-line.hl { stroke: #bf8700; stroke-width: 3; fill-opacity: 1; }
.front-line { fill: none; stroke: var(--front); stroke-width: 1.6; stroke-opacity: .7; }
.point-label { font-size: 10.5px; fill: var(--ink); paint-order: stroke; stroke: #fff; stroke-width: 3px;
               pointer-events: none; }
.label-sample { font-size: 11px; margin-right: 4px; }
.pc-line { fill: none; stroke: var(--other); stroke-opacity: .25; stroke-width: 1; }
.pc-line.front { stroke: var(--front); stroke-opacity: .9; stroke-width: 1.8; }
.pc-line.infeasible { stroke-dasharray: 3 3; }
.series { fill: none; stroke: var(--accent); stroke-width: 2; }
.series-point { fill: var(--accent); }
.bar.promoted, .swatch.promoted { fill: var(--front); background: var(--front); }
.bar.stopped, .swatch.stopped { fill: #afb8c1; background: #afb8c1; }
.bar.running, .swatch.running { fill: #f2cc60; background: #f2cc60; }
.bar-label { font-size: 11px; fill: var(--ink); }
.bar-text { font-size: 10.5px; fill: #fff; pointer-events: none; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 16px; margin: 6px 0 10px; font-size: 13px; }
.legend-entry { display: inline-flex; align-items: center; gap: 5px; }
.legend-entry svg { overflow: visible; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; }
.table-scroll { overflow-x: auto; }
table.data { border-collapse: collapse; font-size: 13px; margin: 6px 0; }
table.data th, table.data td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left;
                               vertical-align: top; }
table.data th { background: var(--panel); position: sticky; top: 0; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort="ascending"]::after { content: " \25B2"; font-size: 9px; }
table.sortable th[aria-sort="descending"]::after { content: " \25BC"; font-size: 9px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.summary { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; color: var(--muted); }
td.reason { max-width: 720px; }
th .unit { font-weight: normal; color: var(--muted); font-size: 11px; }
tr.front-row { cursor: pointer; }
tr.front-row:hover, tbody.hl tr.front-row { background: #fff8c5; }
tr.front-row.infeasible td:first-child { border-left: 3px solid var(--bad); }
tr.detail > td { background: #fbfcfd; padding: 10px 14px; }
td.na { color: var(--muted); }
.genome-scroll { overflow-x: auto; }
svg.genome { height: 230px; width: auto; max-width: none; display: block; }
.op { stroke: rgba(0,0,0,.25); fill-opacity: .9; }
.op-class { font-size: 13px; font-weight: 600; fill: #111; }
.op-knob { font-size: 11px; fill: #111; }
.slot-index, .fusion { font-size: 11px; fill: var(--muted); }
.stream { stroke: var(--muted); stroke-width: 1.5; }
.share { fill: none; stroke: #57606a; stroke-width: 1.5; }
.share.featurizer { stroke-dasharray: 5 3; }
#share-arrow path { fill: #57606a; }
.ancestors { margin: 4px 0; padding-left: 18px; font-size: 13px; }
#tooltip { position: fixed; z-index: 10; pointer-events: none; background: #fff; border: 1px solid var(--line);
           border-radius: 6px; box-shadow: 0 4px 14px rgba(0,0,0,.12); padding: 8px 10px; font-size: 12px;
           max-width: 460px; }
#tooltip .t-head { font-weight: 600; }
#tooltip .t-summary { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; color: var(--muted);
                      margin: 2px 0 4px; word-break: break-word; }
#tooltip table { border-collapse: collapse; }
#tooltip td { padding: 0 8px 0 0; }
#js-errors { background: #ffebe9; border: 1px solid var(--bad); color: var(--bad); padding: 8px 12px;
             white-space: pre-wrap; margin: 10px 28px; }
footer { color: var(--muted); font-size: 12px; padding: 14px 28px; border-top: 1px solid var(--line); }
)CSS";
}

}  // namespace livs::report
