#!/usr/bin/env python3
"""Fails when bench/profiling_backend.hpp does not forward an operation of evaluator/backend.hpp.

ProfilingBackend wraps a backend for bench_train --profile. An operation it
does not override falls through to Backend's default, which throws
"not implemented by the cuda backend" and kills the profile (the grouped
GEMMs, then the SSD scan, were missed this way). Every virtual whose default
body calls unsupported(...) is a device operation and must be forwarded.

  check_profiling_backend.py SOURCE_DIR
"""
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "."
backend = open(f"{root}/evaluator/backend.hpp").read()
profiling = open(f"{root}/bench/profiling_backend.hpp").read()
# "virtual RET NAME(...) {\n    unsupported(\"NAME\"": the defaults that throw.
operations = sorted(set(re.findall(r'unsupported\("([a-z_0-9]+)"', backend)))
missing = [op for op in operations if f"inner_.{op}(" not in profiling]
if not operations:
    sys.exit("check_profiling_backend: found no operations in evaluator/backend.hpp (pattern out of date?)")
if missing:
    sys.exit("bench/profiling_backend.hpp does not forward: " + ", ".join(missing))
print(f"profiling_backend.hpp forwards all {len(operations)} device operations")
