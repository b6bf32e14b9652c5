"""engine/ must stay pure: no clock, no global randomness, no threads, sockets, asyncio or Ray."""

import ast
import pathlib

import pytest

FORBIDDEN = {"time", "random", "threading", "socket", "asyncio", "ray", "datetime",
             "multiprocessing", "concurrent", "subprocess", "os"}
ENGINE = pathlib.Path(__file__).resolve().parent.parent / "engine"
MODULES = sorted(ENGINE.rglob("*.py"))


def imported_roots(source: str) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_engine_module_imports_nothing_impure(path):
    bad = imported_roots(path.read_text()) & FORBIDDEN
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_checker_catches_a_forbidden_import():
    assert imported_roots("import time\nfrom ray import remote\n") & FORBIDDEN == {"time", "ray"}


def test_engine_uses_no_numpy_global_random_state():
    for path in MODULES:
        src = path.read_text()
        assert "np.random.seed" not in src and "numpy.random.seed" not in src
        assert "np.random.rand" not in src and "random.random(" not in src
