"""docs/SCENARIOS.md's default column says what the schema does: every documented default is
read back from the schema (which takes the engine's defaults from the engine's constants)."""

import re
import tomllib
from pathlib import Path

import msgspec
import pytest

from sim.scenario.schema import (
    Dam,
    Network,
    Receiver,
    Scenario,
    Upstream,
    Workload,
    parse_duration,
)

DOC = Path(__file__).resolve().parent.parent / "docs" / "SCENARIOS.md"
SECTIONS = {"Top level": Scenario, "`[network]`": Network, "`[dam]`": Dam,
            "`[[upstreams]]`": Upstream, "`[[receivers]]`": Receiver,
            "`[[workloads]]`": Workload}
REQUIRED = object()


def _default(cls, path: str):
    """The schema's default for the dotted ``path`` under ``cls``."""
    value = None
    for i, seg in enumerate(path.split(".")):
        if i:
            cls = type(value)
            if isinstance(value, dict):  # a mapping field: no per-key default
                return value.get(seg, REQUIRED)
        field = next((f for f in msgspec.structs.fields(cls) if f.name == seg), None)
        assert field is not None, f"{path}: no field {seg!r} in {cls.__name__}"
        if field.default is not msgspec.NODEFAULT:
            value = field.default
        elif field.default_factory is not msgspec.NODEFAULT:
            value = field.default_factory()
        else:
            return REQUIRED
    return value


def _rows():
    section = None
    for line in DOC.read_text().splitlines():
        if line.startswith("## "):
            section = next((c for k, c in SECTIONS.items() if line[3:].startswith(k)), None)
            continue
        if section is None or not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) < 3:
            continue
        names = [n.strip() for n in cells[0].split(" / ")]
        defaults = [d.strip() for d in cells[1].split(" / ")]
        if len(defaults) == 1 and len(names) > 1:
            defaults = defaults * len(names)
        first = None
        for name, default in zip(names, defaults, strict=False):
            name = name.strip("`")
            if name.startswith("["):
                continue  # a sub-table, e.g. [[upstreams.outages]]
            if name.startswith("."):
                name = first.rsplit(".", 1)[0] + name
            first = first or name
            if "<" in name:
                continue  # region_latency.<region>
            yield section, name, default


ROWS = list(_rows())


def test_the_doc_has_default_tables():
    assert len(ROWS) > 60


@pytest.mark.parametrize("section,name,default", ROWS,
                         ids=[f"{c.__name__}.{n}" for c, n, _ in ROWS])
def test_documented_default_is_the_schema_default(section, name, default):
    actual = _default(section, name)
    literal = re.match(r"^`([^`]*)`", default)
    if default.startswith("required"):
        assert actual is REQUIRED
    elif default.startswith("none"):
        assert actual is None
    elif literal:
        try:
            expected = tomllib.loads(f"v = {literal.group(1)}")["v"]
        except tomllib.TOMLDecodeError:
            return  # a name, not a value (`duration`, `latency`): nothing to compare
        if isinstance(actual, msgspec.Struct) or (isinstance(actual, dict) and expected == {}):
            assert expected == {} and not msgspec.to_builtins(actual)
        elif isinstance(actual, str) and _is_duration(actual) and isinstance(expected, str):
            assert parse_duration(actual) == parse_duration(expected)
        elif isinstance(actual, list) and actual and _is_duration(actual[0]):
            assert [parse_duration(x) for x in actual] == [parse_duration(x) for x in expected]
        else:
            assert actual == expected, f"docs say {expected!r}, the schema {actual!r}"
    # otherwise a description ("first region"): nothing to compare


def _is_duration(x) -> bool:
    return isinstance(x, str) and re.fullmatch(r"(\d+(\.\d+)?(us|ms|s|m|h))+", x) is not None
