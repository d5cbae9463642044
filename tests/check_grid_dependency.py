#!/usr/bin/env python3
"""Every kernel of the CUDA backend must begin with await_prior_grids().

A captured step graph may give the edges into this backend's kernels the
programmatic type (evaluator/cuda/graph_edges.cpp, LIVSEARCH_CUDA_PDL): such
a kernel can start before the kernel it depends on has finished, and only
its griddepcontrol.wait (evaluator/cuda/grid_dependency.cuh) keeps it from
reading inputs that are not there yet or overwriting what the previous
kernel still reads. graph_edges.cpp recognises the backend's kernels by
their namespace, so a kernel under evaluator/cuda without the wait as its
first statement would race. Usage: check_grid_dependency.py <repository root>
"""
import pathlib
import re
import sys


def kernels(text):
    """(name, first statement of the body) of every __global__ definition."""
    for match in re.finditer(r"__global__", text):
        line_start = text.rfind("\n", 0, match.start()) + 1
        if text[line_start:match.start()].lstrip().startswith("//"):
            continue
        depth, j = 0, match.end()
        while j < len(text):
            c = text[j]
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
            elif depth == 0 and c in ";{":
                break
            j += 1
        if j >= len(text) or text[j] == ";":  # a declaration
            continue
        head = text[match.end():j]
        names = re.findall(r"(\w+)\s*\(", head)
        name = [n for n in names if n != "__launch_bounds__"][0] if names else "?"
        body = text[j + 1:]
        body = re.sub(r"^\s*(//[^\n]*\n\s*)*", "", body)  # comments before the first statement
        yield name, body.split(";", 1)[0].strip()


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    sources = sorted((root / "evaluator" / "cuda").glob("*.cu")) + sorted((root / "evaluator" / "cuda").glob("*.cuh"))
    checked, missing = 0, []
    for path in sources:
        for name, first in kernels(path.read_text()):
            checked += 1
            if first != "await_prior_grids()":
                missing.append(f"{path.relative_to(root)}: kernel {name} starts with `{first[:60]}`")
    if missing:
        print("kernels that do not begin with await_prior_grids():")
        print("\n".join(missing))
        return 1
    if checked == 0:
        print(f"no kernels found under {root / 'evaluator' / 'cuda'}")
        return 1
    print(f"all {checked} kernels under evaluator/cuda begin with await_prior_grids()")
    return 0


if __name__ == "__main__":
    sys.exit(main())
