"""Where a run's numbers came from, and where its files go.

Every ``summary.json`` carries a ``provenance`` record: the apidam version, the scenario file and
its SHA-256, the seed and where it came from, every ``--set`` override, the backend and
placement, the command line, Python and platform, whether the compiled build ran, and when the
run started (UTC). Each run
writes to a folder of its own, ``out/<scenario>/<run id>/`` (``YYYYmmdd-HHMMSS-xxxx``: sortable,
unique), and ``out/<scenario>/latest`` points at the newest; ``--out DIR`` names a folder
explicitly, whose earlier artefacts are removed first.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import platform
import secrets
import sys
from importlib import metadata
from pathlib import Path

from .compiled import is_compiled

__all__ = ["LATEST", "new_run_dir", "point_latest", "provenance", "resolve_run"]

LATEST = "latest"


def _version() -> str:
    try:
        return metadata.version("apidam")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a plain checkout
        return "unknown"


def provenance(*, scenario_path: Path | None, overrides: list[str], seed: int,
               seed_option: bool, backend: str, placement: str | None,
               argv: list[str] | None = None) -> dict:
    """The record; ``seed_option``: the seed came from ``--seed``."""
    doc: dict = {"apidam_version": _version()}
    if scenario_path is not None:
        data = scenario_path.read_bytes()
        doc["scenario_file"] = str(scenario_path)
        doc["scenario_sha256"] = hashlib.sha256(data).hexdigest()
    seed_set = any(o.split("=", 1)[0].strip() == "seed" for o in overrides)
    doc["seed"] = seed
    doc["seed_source"] = "--seed" if seed_option else "--set" if seed_set else "scenario file"
    doc["overrides"] = [o for o in overrides if not (seed_option and o == f"seed={seed}")]
    doc["backend"] = backend
    doc["placement"] = placement
    doc["command"] = ["apidam", *(sys.argv[1:] if argv is None else argv)]
    doc["python"] = platform.python_version()
    doc["compiled"] = is_compiled()  # the mypyc build (same results, faster)
    doc["platform"] = f"{platform.system()} {platform.machine()}"
    doc["started_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return doc


def new_run_dir(base: Path) -> Path:
    """A fresh folder name under ``base`` (not created)."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    while True:
        run = base / f"{stamp}-{secrets.token_hex(2)}"
        if not run.exists():
            return run


def point_latest(base: Path, run: Path) -> None:
    """``base/latest`` → ``run`` (a relative symlink; a text file where links are refused)."""
    link = base / LATEST
    tmp = base / f".{LATEST}.{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run.name, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:
        tmp.unlink(missing_ok=True)
        try:
            if link.is_symlink() or link.is_file():
                link.unlink()
            link.write_text(run.name + "\n")
        except OSError:  # e.g. a folder of that name: the run is kept, only the pointer is not
            pass


def resolve_run(path: Path) -> Path:
    """A run folder from what a user typed: the folder, its ``summary.json``, or a scenario's
    output folder (its ``latest`` run)."""
    if path.is_file():
        return path.parent
    latest = path / LATEST
    if not (path / "summary.json").exists() and (latest.exists() or latest.is_symlink()):
        if latest.is_symlink() or latest.is_dir():
            return latest.resolve()
        return path / latest.read_text().strip()
    return path
