#!/usr/bin/env python3
"""Markdown tables from a log of scripts/gpu-pending-run.sh switches.

Each measurement in the log starts with a header line
    === NAME: SETTING COMMAND...
(SETTING is "default" or the environment the command ran under) and is
followed by the program's output, whose "JSON {...}" lines carry the numbers:
bench_train's rows (preset, ms_per_step) and search_throughput's rows
(workers, candidates_per_minute, speedup). Rounds of the same NAME (".. round
N") are one group; repeated runs of a setting are listed side by side. A
bench_train group of two rows (the MoE genome and its swiglu twin) gets a
column with the ratio of their medians.

    python3 bench/switch_table.py gpu-out/switches.log
"""
import json
import re
import sys
from collections import OrderedDict

HEADER = re.compile(r"^=== (?P<name>.*?)(?: round \d+)?: (?P<setting>\S+(?: \S+=\S+)*) \S*/(?P<program>\w+)\b")


def rows_of(log_text):
    """(group, setting, program, record) for every JSON line, in log order."""
    current = None
    for line in log_text.splitlines():
        header = HEADER.match(line)
        if header:
            current = (header["name"], header["setting"], header["program"])
            continue
        if current and line.startswith("JSON "):
            try:
                record = json.loads(line[5:])
            except json.JSONDecodeError:
                continue
            yield current + (record,)


def tables(log_text):
    """One markdown table per group: a row per setting, a column per item."""
    groups = OrderedDict()
    for name, setting, program, record in rows_of(log_text):
        if program == "bench_train":
            item = "%s d%s" % (record.get("preset", "?").split("/")[-1], record.get("d_model", "?"))
            value = "%.3f" % record["ms_per_step"] if "ms_per_step" in record else "-"
        elif program == "search_throughput":
            item = "%s workers" % record.get("workers", "?")
            value = "%.1f (%.2fx)" % (record.get("candidates_per_minute", 0.0), record.get("speedup", 0.0))
        else:
            continue
        cells = groups.setdefault(name, OrderedDict()).setdefault(setting, OrderedDict())
        cells.setdefault(item, []).append(value)
        if program == "bench_train" and "ms_per_step" in record:
            cells.setdefault("_ms", OrderedDict()).setdefault(item, []).append(record["ms_per_step"])
    out = []
    for name, settings in groups.items():
        items = list(OrderedDict.fromkeys(i for cells in settings.values() for i in cells if i != "_ms"))
        pair = len(items) == 2 and all("_ms" in cells for cells in settings.values())
        out.append("%s (ms per step, or candidates a minute and speed-up; runs side by side)\n" % name)
        out.append("| setting | " + " | ".join(items) + (" | ratio of medians |" if pair else " |"))
        out.append("| --- |" + " --- |" * (len(items) + pair))
        for setting, cells in settings.items():
            line = "| %s | " % setting + " | ".join(" / ".join(cells.get(i, ["-"])) for i in items) + " |"
            if pair:
                first, second = (median(cells["_ms"].get(i, [])) for i in items)
                line += " %s |" % ("%.2fx" % (first / second) if first and second else "-")
            out.append(line)
        out.append("")
    return "\n".join(out)


def median(values):
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return None
    return ordered[n // 2] if n % 2 else 0.5 * (ordered[n // 2 - 1] + ordered[n // 2])


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: switch_table.py SWITCHES_LOG")
    with open(sys.argv[1], encoding="utf-8") as log:
        print(tables(log.read()))
