"""Region plans, reroute choice and region health."""

from engine.routing import RegionHealth, initial_regions, listed_regions, reroute_target

R = ("iad", "lax", "ord", "fra")


def test_listed_regions_default():
    assert listed_regions((), "iad") == ("iad",)
    assert listed_regions(("lax",), "iad") == ("lax",)


def test_initial_plan_all_healthy():
    h = RegionHealth(R)
    assert initial_regions(("lax", "ord"), "fallback", h) == ("lax", "ord")


def test_fallback_replaces_a_down_region_listed_first_then_any():
    h = RegionHealth(R)
    h.mark_down("lax", 0)
    assert initial_regions(("lax", "ord"), "fallback", h) == ("iad", "ord")
    h.mark_down("iad", 0)
    plan = initial_regions(("lax", "ord"), "fallback", h)
    assert sorted(plan) == ["fra", "ord"] and len(set(plan)) == len(plan)


def test_strict_only_listed_and_may_be_empty():
    h = RegionHealth(R)
    h.mark_down("lax", 0)
    assert initial_regions(("lax", "ord"), "strict", h) == ("ord",)
    h.mark_down("ord", 0)
    assert initial_regions(("lax", "ord"), "strict", h) == ()


def test_reroute_prefers_listed_untried_unused():
    h = RegionHealth(R)
    assert reroute_target("iad", [], [], ("iad", "lax", "ord"), "fallback", h) == "lax"
    assert reroute_target("iad", ["lax"], ["ord"], ("iad", "lax", "ord"), "fallback", h) == "fra"
    assert reroute_target("iad", ["lax"], ["ord"], ("iad", "lax", "ord"), "strict", h) is None
    h.mark_down("lax", 0)
    assert reroute_target("iad", [], [], ("iad", "lax"), "fallback", h) == "ord"


def test_health_threshold_probe_and_recovery():
    h = RegionHealth(R, failure_threshold=3, probe_interval_us=100)
    assert not h.record("iad", False, 0) and not h.record("iad", False, 1)
    h.record("iad", True, 2)  # a success resets the count
    assert not h.record("iad", False, 3) and not h.record("iad", False, 4)
    assert h.record("iad", False, 5) and not h.is_up("iad")
    assert h.healthy() == ("lax", "ord", "fra")
    assert h.probe_due(104) == [] and h.probe_due(105) == ["iad"]
    assert h.probe_due(106) == []  # re-armed
    h.probe_result("iad", False, 205)
    assert not h.is_up("iad")
    v = h.version
    h.probe_result("iad", True, 206)
    assert h.is_up("iad") and h.version == v + 1
    assert not h.mark_up("iad") and h.mark_down("ord", 1) and not h.mark_down("ord", 2)
    assert not h.is_up("nowhere")
