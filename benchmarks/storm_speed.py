"""The README story's wall time, measured against a reference commit on the same machine.

    python benchmarks/storm_speed.py [--ref 37556d8] [--repeat 3]

Why a reference: on this class of machine (a shared 2-core VM) the wall time of the full
``stripe-5min-outage`` moves too much for a bar in absolute seconds: one commit took 21-23 s
on one day and 27-29 s on another, and the reference 41 s to 61 s within one afternoon. What is
stable is the ratio to other code run interleaved with it. The speed bar was set ("≤ 20 s;
today ~29 s") when the reference commit took ~29 s; the script runs the reference and the
working tree alternately (``--repeat`` pairs, each run in a fresh process, each tree with its
own scenario file), and reports per pair the wall times, events, µs per event, peak RSS and
the speed-up; then the working tree's time expressed in the reference's seconds
(``--ref-seconds`` ÷ median speed-up), against ``--bar``. Both runs must reproduce their own
trace hash across repeats (asserted). The reference is checked out with ``git worktree`` into a
temporary directory and removed at the end; nothing is fetched. Writes
``results/storm_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, table, write_json

# The last commit before the simulator-protocol refactor: the code the bar was set against.
REFERENCE = "37556d8"
REFERENCE_SECONDS = 29.0  # what it took when the bar was set
BAR_SECONDS = 20.0
SCENARIO = "scenarios/stripe-5min-outage.toml"

# Run in a child process with the tree on sys.path: imports only what both trees have.
CHILD = """
import json, resource, sys, time
import sim.kernel
from sim.scenario import load_scenario
from sim.runtime.local import run_local
sc = load_scenario(sys.argv[1])
t = time.perf_counter()
r = run_local(sc)
wall = time.perf_counter() - t
print(json.dumps({"wall_s": wall, "events": r.summary["events"],
                  "trace_hash": r.summary["trace_hash"],
                  "compiled": not sim.kernel.__file__.endswith(".py"),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_tree(tree: Path, scenario: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, scenario], cwd=tree, check=True,
                         capture_output=True, text=True,
                         env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ref", default=REFERENCE, help="reference commit (default: %(default)s)")
    ap.add_argument("--ref-seconds", type=float, default=REFERENCE_SECONDS,
                    help="the reference's wall time when the bar was set (%(default)s)")
    ap.add_argument("--bar", type=float, default=BAR_SECONDS, help="(%(default)s s)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved pairs (%(default)s)")
    ap.add_argument("--scenario", default=SCENARIO)
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")

    known = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{args.ref}^{{commit}}"],
                           capture_output=True)
    if known.returncode != 0:
        ap.error(f"--ref {args.ref!r} is not a commit of {ROOT} (this benchmark needs the "
                 f"repository's history: a git clone, not an unpacked archive)")
    with tempfile.TemporaryDirectory(prefix="apidam-ref-") as tmp:
        ref_tree = Path(tmp) / "ref"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q",
                        str(ref_tree), args.ref], check=True)
        try:
            pairs = []
            for i in range(args.repeat):
                ref = run_tree(ref_tree, args.scenario)
                now = run_tree(ROOT, args.scenario)
                pairs.append((ref, now))
                print(f"pair {i + 1}/{args.repeat}: reference {ref['wall_s']:.1f} s, "
                      f"working tree {now['wall_s']:.1f} s", file=sys.stderr, flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(ref_tree)], check=False)

    for side in (0, 1):
        hashes = {p[side]["trace_hash"] for p in pairs}
        assert len(hashes) == 1, f"a tree's trace hash changed between repeats: {hashes}"
    speedups = [ref["wall_s"] / now["wall_s"] for ref, now in pairs]
    median = statistics.median(speedups)
    equivalent = args.ref_seconds / median
    rows = []
    for i, (ref, now) in enumerate(pairs):
        rows.append([i + 1, f"{ref['wall_s']:.1f}", f"{now['wall_s']:.1f}",
                     f"{speedups[i]:.2f}x",
                     f"{ref['wall_s'] / ref['events'] * 1e6:.2f}",
                     f"{now['wall_s'] / now['events'] * 1e6:.2f}",
                     f"{ref['peak_rss_mb']:.0f}", f"{now['peak_rss_mb']:.0f}"])
    ref0, now0 = pairs[0]
    build = "compiled build" if now0["compiled"] else "pure Python"
    print(f"\n`{args.scenario}`: reference {args.ref} ({ref0['events']:,} events) vs the "
          f"working tree ({now0['events']:,} events, {build}), interleaved\n")
    print(table(["pair", "reference s", "now s", "speed-up", "ref µs/event", "now µs/event",
                 "ref peak RSS MB", "now peak RSS MB"], rows))
    print(f"\nmedian speed-up {median:.2f}x: the working tree takes {equivalent:.1f} s where "
          f"the reference took {args.ref_seconds:.0f} s (bar: {args.bar:.0f} s: "
          f"{'met' if equivalent <= args.bar else 'NOT met'})")
    path = write_json("storm_speed", {
        "scenario": args.scenario, "reference": args.ref, "reference_seconds": args.ref_seconds,
        "bar_seconds": args.bar, "python": platform.python_version(),
        "pairs": [{"reference": r, "now": n} for r, n in pairs],
        "median_speedup": median, "equivalent_seconds": equivalent,
        "met": equivalent <= args.bar})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
