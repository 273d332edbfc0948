"""The declared lower bounds are the ones `make test-min` installs: the two files agree."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FLOOR = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*>=\s*([0-9][0-9.]*)")


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503: pyyaml == PyYAML, a_b == a-b


def declared() -> dict[str, str]:
    """Every requirement of pyproject.toml (build, runtime, extras) as name -> floor."""
    doc = tomllib.loads((REPO / "pyproject.toml").read_text())
    reqs = list(doc["build-system"]["requires"]) + list(doc["project"]["dependencies"])
    for name, extra in doc["project"].get("optional-dependencies", {}).items():
        if name != "docs":  # only `make docs` installs it; test-min never does
            reqs += extra
    floors = {}
    for req in reqs:
        m = FLOOR.match(req)
        assert m, f"{req!r} in pyproject.toml has no `>=` floor for constraints-min.txt"
        floors[_name(m[1])] = m[2]
    return floors


def pinned() -> dict[str, str]:
    lines = (REPO / "constraints-min.txt").read_text().splitlines()
    pins = [ln.split("#")[0].strip() for ln in lines]
    return {_name(p.split("==")[0]): p.split("==")[1] for p in pins if p}


def _release(version: str) -> tuple[int, ...]:
    parts = [int(x) for x in version.split(".")]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)  # 8 == 8.0 == 8.0.0


def test_constraints_min_pins_every_declared_dependency_at_its_floor() -> None:
    floors, pins = declared(), pinned()
    assert sorted(floors) == sorted(pins)
    wrong = {n: (floors[n], pins[n]) for n in floors if _release(floors[n]) != _release(pins[n])}
    assert wrong == {}, "pyproject.toml floor vs constraints-min.txt pin"
