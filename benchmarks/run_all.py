"""Run every benchmark and rewrite the results section of benchmarks/README.md.

    pip install -e '.[bench]' && python benchmarks/run_all.py [--skip-ray]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    ("Kernel vs SimPy vs heapq", "kernel.py", []),
    ("Kernel vs SimPy vs heapq in instructions", "kernel.py", ["--instructions"]),
    ("The README story's wall time against the reference", "storm_speed.py", []),
    ("Engine decisions and memory", "engine_decisions.py", []),
    ("Routing policies", "policies.py", []),
    ("Retry storms", "retry_storm.py", []),
    ("Ray runtime and sweeps", "ray_runtime.py", []),
    ("Live server ingest", "serve_ingest.py", []),
]
MARK = "## Results"


def main() -> None:
    ap = argparse.ArgumentParser(description="run every benchmark, update README.md")
    ap.add_argument("--skip-ray", action="store_true", help="skip ray_runtime.py (slow)")
    args = ap.parse_args()
    sections = []
    for title, script, extra in SCRIPTS:
        if args.skip_ray and script == "ray_runtime.py":
            continue
        if "--instructions" in extra and shutil.which("valgrind") is None:
            print(f"skipping {script} {' '.join(extra)}: no valgrind", flush=True)
            continue
        print(f"running {script} ...", flush=True)
        out = subprocess.run([sys.executable, str(HERE / script), *extra], cwd=HERE,
                             capture_output=True, text=True, check=True).stdout
        command = " ".join([f"python benchmarks/{script}", *extra])
        sections.append(f"### {title} (`{command}`)\n\n{out.strip()}\n")
    machine = (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
               f"Python {platform.python_version()}")
    body = (f"{MARK}\n\nRun on {_dt.date.today().isoformat()}, {machine}, "
            f"by `python benchmarks/run_all.py`.\n\n" + "\n".join(sections))
    readme = HERE / "README.md"
    text = readme.read_text()
    head = text.split(MARK)[0].rstrip() + "\n\n"
    readme.write_text(head + body)
    print(f"updated {readme}")


if __name__ == "__main__":
    main()
