"""The optional compiled build (``apidam compile``): what keeps it buildable and honest.

The build itself takes about a minute and is not part of the default suite; the whole suite run
with the build in place is what checks that the compiled modules give the same trace hashes
(``docs/SIMULATOR.md``). Here: the hot modules type-check as mypyc needs, ``clean`` removes
exactly what ``build`` writes, a missing compiler is a clear error, and runs record the build.
"""

from __future__ import annotations

import json
import sys

import pytest

from sim import compiled
from sim.cli import main

mypy_api = pytest.importorskip("mypy.api")


def test_the_hot_modules_type_check_as_mypyc_needs() -> None:
    # mypyc compiles what the annotations say; a type error here is a build that fails (or, for
    # a wrong annotation, a compiled run that refuses a value the pure-Python run accepts)
    out, err, status = mypy_api.run([*compiled.MYPY_OPTIONS, "--cache-dir=/dev/null",
                                     *(str(compiled.ROOT / p) for p in compiled.HOT_MODULES)])
    assert status == 0, out + err


def test_no_hot_module_defines_a_class_with_keyword_arguments() -> None:
    # mypyc drops class keywords silently (python/mypy#21938): a compiled
    # `class C(msgspec.Struct, frozen=True)` would come out mutable
    import ast

    offenders = []
    for path in compiled.HOT_MODULES:
        tree = ast.parse((compiled.ROOT / path).read_text())
        offenders += [f"{path}:{node.lineno} {node.name}" for node in ast.walk(tree)
                      if isinstance(node, ast.ClassDef) and node.keywords]
    assert offenders == []


def test_the_python_m_entry_point_needs_nothing_else() -> None:
    # `python -m sim.compiled --clean` must work when a broken build breaks `apidam` itself
    import subprocess

    code = ("import sys, sim.compiled; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('engine', 'numpy', 'msgspec') "
            "or m in ('sim.kernel', 'sim.cli')]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=compiled.ROOT)
    assert out.stdout.strip() == "[]"


def test_the_kernel_imports_without_mypy_installed() -> None:
    # the plain install has no mypy_extensions: its decorator falls back to a no-op
    import subprocess

    code = ("import sys; sys.modules['mypy_extensions'] = None; import sim.kernel; "
            "print(sim.kernel.Actor.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=compiled.ROOT)
    assert out.stdout.strip() == "Actor"


def test_clean_removes_the_extensions_and_the_shared_library(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(compiled, "ROOT", tmp_path)
    monkeypatch.setattr(compiled, "MANIFEST", tmp_path / "sim" / "native_manifest.json")
    suffix = compiled._EXTENSIONS[0]
    made = []
    for path in (compiled.HOT_MODULES[0], compiled.HOT_MODULES[-1], "sim/native__mypyc.py"):
        src = tmp_path / path
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text("# source\n")
        so = src.with_suffix(suffix)
        so.write_bytes(b"\0")
        made.append(so)
    assert compiled.compiled_modules() == [compiled._module_name(compiled.HOT_MODULES[0]),
                                           compiled._module_name(compiled.HOT_MODULES[-1])]
    leftover = tmp_path / "sim" / "gone_from_the_list" / f"old{suffix}"  # an earlier list's
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"\0")
    made.append(leftover)
    compiled.MANIFEST.write_text("{}")
    assert sorted(compiled.clean()) == sorted(made)
    assert not compiled.MANIFEST.exists()
    assert compiled.compiled_modules() == []
    assert all(not p.exists() for p in made)
    assert (tmp_path / compiled.HOT_MODULES[0]).exists()  # the sources stay


def test_a_missing_compiler_is_a_clear_error(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "mypyc", None)  # import mypyc -> ImportError
    assert main(["compile"]) == 1
    assert "pip install -e '.[fast]'" in capsys.readouterr().err


def test_runs_record_which_build_ran(tmp_path) -> None:
    out = tmp_path / "run"
    assert main(["run", "race-vs-fallback", "--set", 'duration="2s"', "--set", 'drain="2s"',
                 "--quiet", "--no-plots", "--out", str(out)]) == 0
    prov = json.loads((out / "summary.json").read_text())["provenance"]
    # derived two ways: from the extension files on disk, and from the module the run imported
    assert prov["compiled"] is bool(compiled.compiled_modules()) is compiled.is_compiled()


def test_an_edited_source_makes_the_build_stale_and_runs_refuse_it(tmp_path, monkeypatch,
                                                                    capsys) -> None:
    # an extension shadows its .py: after an edit the old compiled code would run silently
    monkeypatch.setattr(compiled, "ROOT", tmp_path)
    monkeypatch.setattr(compiled, "MANIFEST", tmp_path / "sim" / "native_manifest.json")
    for path in compiled.HOT_MODULES:
        src = tmp_path / path
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text(f"# {path}\n")
        src.with_suffix(compiled._EXTENSIONS[0]).write_bytes(b"\0")
    assert compiled.stale_sources() == []  # no manifest: nothing known to be stale
    compiled.MANIFEST.write_text(json.dumps({p: compiled._digest(p)
                                             for p in compiled.HOT_MODULES}))
    assert compiled.stale_sources() == []
    (tmp_path / compiled.HOT_MODULES[1]).write_text("# edited\n")
    assert compiled.stale_sources() == [compiled.HOT_MODULES[1]]
    assert main(["run", "race-vs-fallback", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert compiled.HOT_MODULES[1] in err and "apidam compile" in err
