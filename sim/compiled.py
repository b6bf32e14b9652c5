"""The optional compiled build: the simulator's hot modules compiled with mypyc, in place.

    pip install -e '.[fast]' && apidam compile          # build; apidam compile --clean: remove
    python -m sim.compiled --clean                       # the same, importing nothing else

The pure-Python install stays the reference: the compiled modules are the same source (mypyc
compiles type-annotated Python to C extensions), Python imports an extension module before the
``.py`` beside it, and ``--clean`` goes back. A run's trace hash does not depend on the build:
the test suite run with the build in place checks every golden hash against the compiled
modules (``docs/SIMULATOR.md``); ``summary.json`` records which build ran
(``provenance.compiled``). What it buys: the README
story (``stripe-5min-outage``) runs 1.6-1.8x faster (measured in ``benchmarks/README.md``).

Why these modules: they are where a run spends its time (the kernel, the job state machine,
the actors, the world, the metrics). They must type-check under mypy, because mypyc
compiles what the annotations say: an attribute annotated ``int`` refuses anything else at run
time. The scenario schema, the runtimes' coordination and the CLI stay interpreted.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["HOT_MODULES", "MYPY_OPTIONS", "build", "clean", "compiled_modules", "is_compiled",
           "stale_build_problem", "stale_sources"]

ROOT = Path(__file__).resolve().parent.parent  # holds the engine/ and sim/ packages

#: What the compiled build compiles (paths relative to the project root). Not a module that
#: defines a class with keyword arguments (``class C(msgspec.Struct, frozen=True)``): mypyc
#: drops them without a word (python/mypy#21938), and a Struct would lose ``frozen``,
#: ``kw_only`` or ``gc=False`` (tested). The hot engine modules' records live apart for that
#: reason (``engine.configs``, ``engine.backoff``, ``engine.events``, ``sim.dam.active``); the
#: idempotency, signing and billing modules (once per job) keep theirs and stay interpreted.
HOT_MODULES = (
    "sim/kernel.py",
    "engine/job.py", "engine/limiter.py", "engine/breaker.py", "engine/pacing.py",
    "engine/retry.py", "engine/webhooks.py", "engine/routing.py", "engine/workflow.py",
    "sim/dam/dispatcher.py", "sim/dam/gateway.py", "sim/dam/limiter.py", "sim/dam/region.py",
    "sim/world.py", "sim/queue_world.py",
    "sim/clients/base.py", "sim/clients/diy.py", "sim/clients/frugal.py",
    "sim/clients/performance.py", "sim/clients/arrivals.py",
    "sim/metrics.py", "sim/draws.py", "sim/jitter.py",
)
# mypy checks the hot modules only (the modules they import are read for their types; the
# scenario schema's msgspec classes confuse mypy and are not compiled); tests/test_compiled.py
# type-checks with the same options, so the build cannot rot unnoticed
MYPY_OPTIONS = ("--ignore-missing-imports", "--follow-imports=silent")
# the shared library every compiled module links to, placed inside the sim package so that it
# imports wherever the package does (an editable install puts only the packages on the path)
GROUP = "sim.native"
_EXTENSIONS = tuple(importlib.machinery.EXTENSION_SUFFIXES)
# the SHA-256 of each compiled source, written by build(): an extension shadows its .py, so an
# edit after `apidam compile` would otherwise run the old code without a word
MANIFEST = ROOT / "sim" / "native_manifest.json"


def _digest(path: str, root: Path | None = None) -> str:
    return hashlib.sha256(((root or ROOT) / path).read_bytes()).hexdigest()


def stale_sources() -> list[str]:
    """The hot modules whose source changed since the build (none without a build)."""
    if not MANIFEST.exists():
        return []
    try:
        built = json.loads(MANIFEST.read_text())
    except (OSError, ValueError):
        return list(HOT_MODULES)
    return [p for p in HOT_MODULES if built.get(p) != _digest(p)]


def stale_build_problem() -> str | None:
    """What to say when the build in place is older than its sources (None when it is not, or
    when there is no build): a run, the server and the test suite refuse such a build."""
    stale = stale_sources() if compiled_modules() else []
    if not stale:
        return None
    more = f" and {len(stale) - 1} more" if len(stale) > 1 else ""
    return (f"the compiled build is older than {stale[0]}{more}: run `apidam compile` again, "
            f"or `apidam compile --clean` for pure Python")


def _module_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def compiled_modules() -> list[str]:
    """The hot modules that have a compiled extension beside their source."""
    found = []
    for path in HOT_MODULES:
        src = ROOT / path
        if any(src.with_suffix(suffix).exists() for suffix in _EXTENSIONS):
            found.append(_module_name(path))
    return found


def is_compiled() -> bool:
    """Whether the running kernel is the compiled one (what a run records)."""
    import sim.kernel

    return not sim.kernel.__file__.endswith(".py")


def clean() -> list[Path]:
    """Remove every extension module under engine/ and sim/ (the hot modules', the shared
    library, and any left by an earlier list of hot modules) and the manifest."""
    removed = []
    for package in ("engine", "sim"):
        for so in sorted((ROOT / package).rglob("*")):
            if so.name.endswith(_EXTENSIONS):
                so.unlink()  # unlinking is safe for a process that has it mapped
                removed.append(so)
    MANIFEST.unlink(missing_ok=True)
    return removed


_SETUP = """
from setuptools import setup
from mypyc.build import mypycify
setup(name="apidam-native", script_args=["build_ext", "--inplace"],
      ext_modules=mypycify({modules!r}, opt_level="3", group_name={group!r}))
"""


def build(*, verbose: bool = False) -> list[Path]:
    """Compile the hot modules into extensions beside their sources; returns what it wrote.

    The build runs in a scratch directory holding a copy of the two packages (setuptools must
    not read the project's own ``pyproject.toml``, and a failed build must leave nothing
    behind); the extensions are then copied into place."""
    try:
        import mypyc  # noqa: F401
    except ImportError as e:
        raise RuntimeError("the compiled build needs mypyc: pip install -e '.[fast]'") from e
    with tempfile.TemporaryDirectory(prefix="apidam-compile-") as tmp:
        work = Path(tmp)
        for package in ("engine", "sim"):
            shutil.copytree(ROOT / package, work / package,
                            ignore=shutil.ignore_patterns("__pycache__", *(
                                f"*{s}" for s in _EXTENSIONS)))
        digests = {p: _digest(p, work) for p in HOT_MODULES}  # what is compiled
        (work / "setup.py").write_text(_SETUP.format(modules=[*MYPY_OPTIONS, *HOT_MODULES],
                                                     group=GROUP))
        out = subprocess.run([sys.executable, "setup.py"], cwd=work, text=True,
                             capture_output=not verbose)
        if out.returncode != 0:
            tail = "\n".join((out.stdout + out.stderr).splitlines()[-20:]) if not verbose else ""
            raise RuntimeError(f"mypyc failed (exit {out.returncode})\n{tail}")
        clean()  # nothing of an earlier build stays (a module may have left the list)
        written = []
        for so in sorted(work.rglob("*")):
            rel = so.relative_to(work)
            if rel.parts[0] in ("engine", "sim") and so.name.endswith(_EXTENSIONS):
                dest = ROOT / rel
                # a new file renamed into place: a process (this one included) may have the
                # old library mapped, and writing into that file would crash it
                tmp_dest = dest.with_name(dest.name + ".new")
                shutil.copy2(so, tmp_dest)
                os.replace(tmp_dest, dest)
                written.append(dest)
    MANIFEST.write_text(json.dumps(digests, indent=1) + "\n")
    return written


def _main(argv: list[str] | None = None) -> int:
    """``python -m sim.compiled [--clean]``: works even when a broken build keeps ``apidam``
    from importing (this module imports nothing of the engine or the simulator)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m sim.compiled", description=__doc__.split(
        "\n\n")[0])
    ap.add_argument("--clean", action="store_true", help="remove the compiled modules")
    args = ap.parse_args(argv)
    if args.clean:
        print(f"removed {len(clean())} compiled modules")
        return 0
    try:
        print(f"wrote {len(build())} extension modules")
    except RuntimeError as e:
        print(f"sim.compiled: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
