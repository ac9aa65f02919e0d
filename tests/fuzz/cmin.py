#!/usr/bin/env python3
"""Shrink a libFuzzer-merged corpus to a small set that keeps its edges: greedy set cover.

`-merge=1` adds files smallest first whenever they add a feature, so it keeps many files that
each add one edge. This script runs the target's fuzz binary once per file of CANDIDATES to get
each file's full edge set, keeps every `seed-*` and `regress-*` file, then repeatedly takes the
file that adds the most uncovered edges (the smaller on a tie) until every edge is covered or
the directory holds MAX_FILES files (the files left out then add the fewest edges). CORPUS is
replaced by the result; fuzzer finds are named by their SHA-1.

    python3 tests/fuzz/cmin.py BINARY CANDIDATES CORPUS [MAX_FILES]

See README.md ("Corpus policy") for the whole procedure.
"""

import concurrent.futures
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile


def edges(binary, path):
    """The features (edges, no hit counts) of one input, as libFuzzer's merge records them."""
    with tempfile.NamedTemporaryFile("w", suffix=".ctl", delete=False) as ctl:
        ctl.write(f"1\n0\n{path}\n")
    try:
        subprocess.run(
            [binary, "-merge_inner=1", "-use_counters=0", f"-merge_control_file={ctl.name}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=120,
        )
        with open(ctl.name) as f:
            for line in f:
                parts = line.split()
                if parts[:2] == ["FT", "0"]:
                    return frozenset(int(x) for x in parts[2:])
    finally:
        os.unlink(ctl.name)
    return frozenset()


def main():
    binary, candidates, corpus = sys.argv[1:4]
    max_files = int(sys.argv[4]) if len(sys.argv) > 4 else 1 << 30
    paths = sorted(os.path.join(candidates, n) for n in os.listdir(candidates))
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        feats = dict(zip(paths, pool.map(lambda p: edges(binary, p), paths)))
    pinned = [p for p in paths if os.path.basename(p).startswith(("seed-", "regress-"))]
    everything = frozenset().union(*feats.values())
    keep = list(pinned)
    covered = set().union(*(feats[p] for p in pinned))
    rest = {p: feats[p] for p in paths if p not in pinned}
    while len(keep) < max_files and rest:
        best = max(rest, key=lambda p: (len(rest[p] - covered), -os.path.getsize(p)))
        if not rest[best] - covered:
            break
        keep.append(best)
        covered |= rest.pop(best)
    data = {}
    for p in keep:
        with open(p, "rb") as f:
            blob = f.read()
        name = os.path.basename(p) if p in pinned else hashlib.sha1(blob).hexdigest()
        data[name] = blob
    shutil.rmtree(corpus, ignore_errors=True)
    os.makedirs(corpus)
    for name, blob in data.items():
        with open(os.path.join(corpus, name), "wb") as f:
            f.write(blob)
    print(f"{corpus}: {len(data)} files ({len(pinned)} pinned), {sum(map(len, data.values()))} bytes, "
          f"{len(covered)}/{len(everything)} edges")


if __name__ == "__main__":
    main()
