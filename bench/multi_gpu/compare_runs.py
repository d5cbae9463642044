#!/usr/bin/env python3
"""Compare two livsearch databases of the same search run on different devices.

  compare_runs.py ONE.db OTHER.db [--expect-devices N]

Prints how many finished evaluations each holds, how many are in both with
the same status and the same value of every untimed metric, which differ
(and by how much, for perplexity), and the devices OTHER's evaluations ran
on. With --expect-devices N it fails (exit 1) unless OTHER's evaluations ran
on N different devices. Timed metrics (*_seconds, *_ms, *_tok_s) are left
out: they differ run to run by nature.
"""
import argparse
import sqlite3
import sys

TIMED_SUFFIXES = ("_seconds", "_ms", "_tok_s")


def evaluations(path):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    rows = db.execute(
        "SELECT e.id, e.genome_hash, e.fidelity, e.seed, e.status, e.device FROM evaluations e "
        "WHERE e.status IN ('ok', 'failed')").fetchall()
    out, devices = {}, {}
    for eid, genome, fidelity, seed, status, device in rows:
        metrics = {name: value for name, value in db.execute(
            "SELECT name, value FROM metrics WHERE evaluation_id = ?", (eid,))
            if not name.endswith(TIMED_SUFFIXES)}
        out[(genome, fidelity, seed)] = (status, metrics)
        devices[device] = devices.get(device, 0) + 1
    return out, devices


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("one")
    parser.add_argument("other")
    parser.add_argument("--expect-devices", type=int, default=0)
    a = parser.parse_args()
    one, _ = evaluations(a.one)
    other, devices = evaluations(a.other)
    common = sorted(set(one) & set(other))
    same = [k for k in common if one[k] == other[k]]
    print(f"{a.one}: {len(one)} finished evaluations; {a.other}: {len(other)}; in both: {len(common)}, "
          f"identical: {len(same)}")
    for key in common:
        if one[key] == other[key]:
            continue
        (s1, m1), (s2, m2) = one[key], other[key]
        p1, p2 = m1.get("perplexity"), m2.get("perplexity")
        detail = f"perplexity {p1} vs {p2}" if p1 is not None and p2 is not None else f"status {s1} vs {s2}"
        print(f"  differs: {key[0][:12]} fidelity {key[1]} seed {key[2]}: {detail}")
    print("devices of", a.other + ":", ", ".join(f"{d} x {n}" for d, n in sorted(devices.items())))
    if a.expect_devices and len(devices) != a.expect_devices:
        print(f"expected evaluations on {a.expect_devices} devices, found {len(devices)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
