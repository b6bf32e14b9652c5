"""``__all__`` is kept true in every module of engine, sim and live (as SimPy checks its own): every
listed name exists, and every public class and function a module defines is listed."""

import importlib
import inspect
import pkgutil

import pytest

import engine
import sim

PACKAGES = [engine, sim]
try:
    import live
    import live.server  # only with aiohttp (the serve extra)

    PACKAGES.append(live)
except ImportError:  # pragma: no cover
    pass


def _modules():
    for pkg in PACKAGES:
        yield pkg.__name__
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            if info.name == "sim.runtime.ray":
                continue  # imports ray: checked below, only when it is installed
            if info.name.endswith("__mypyc"):
                continue  # the compiled build's shared library (apidam compile), not ours
            yield info.name


MODULES = sorted(_modules())


@pytest.mark.parametrize("name", MODULES)
def test_all_is_true(name):
    mod = importlib.import_module(name)
    listed = getattr(mod, "__all__", None)
    assert listed is not None, f"{name} has no __all__"
    assert len(set(listed)) == len(listed), f"{name}.__all__ lists a name twice"
    missing = [n for n in listed if not hasattr(mod, n)]
    assert not missing, f"{name}.__all__ lists undefined names {missing}"
    defined = [n for n, obj in vars(mod).items()
               if not n.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj))
               and getattr(obj, "__module__", None) == name]
    unlisted = [n for n in defined if n not in listed]
    assert not unlisted, f"{name} defines public {unlisted} but does not list them in __all__"


def test_ray_module_all_is_true():
    pytest.importorskip("ray")
    test_all_is_true("sim.runtime.ray")
