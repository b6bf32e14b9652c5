import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=5000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def ray_session():
    """One Ray for the whole test session (ray.init costs ~6 s and ~1 GB)."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False,
                 runtime_env={"env_vars": {"PYTHONHASHSEED": "0"}})
    yield ray
    ray.shutdown()


def pytest_configure(config):
    """With the compiled build in place the suite tests it; a build older than its sources
    would test the old code, so refuse to run (sim/compiled.py)."""
    from sim.compiled import stale_build_problem

    problem = stale_build_problem()
    if problem:
        pytest.exit(problem, returncode=2)
