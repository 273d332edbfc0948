"""The human reference: ESS group deltas (the paper's Tables 4-7 'Human data' rows), as data.

The numbers ship in `vpbatch/reference/human_ess.json`; this module loads them as arrays in
PVQ order and maps persona names (`gender=male`, `political=left-wing`) onto their rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from vpbatch.benchmark.conditions import PERSONA_PREFIX
from vpbatch.benchmark.dims import PVQ
from vpbatch.errors import DataError

__all__ = ["HumanGroup", "load_human_reference", "match_persona", "REFERENCE_PATH"]

REFERENCE_PATH = Path(__file__).resolve().parents[1] / "benchmark" / "reference" / "human_ess.json"

# Config spellings of a group -> the reference's key. Personas are config data, so accept the
# obvious variants rather than make every config author learn ours.
_GROUP_ALIASES = {
    "gender": "gender",
    "sex": "gender",
    "age": "age",
    "political": "political",
    "politics": "political",
    "politicalorientation": "political",
    "education": "education",
    "educationlevel": "education",
    "degree": "education",
}


@dataclass(frozen=True, slots=True)
class HumanGroup:
    """One demographic group of the ESS reference: its members' deltas (n_members, 10)."""

    name: str  # reference key: "gender", "age", "political", "education"
    label: str  # heading text, e.g. "Political orientation"
    table: int  # the paper's table number
    members: tuple[str, ...]  # the paper's row labels, in its order
    contrast: tuple[str, str]  # the gap the report reads: first minus second
    deltas: npt.NDArray[np.float64]  # (n_members, 10), PVQ order

    def row(self, member: str) -> npt.NDArray[np.float64]:
        return self.deltas[self.members.index(member)]

    def gap(self) -> npt.NDArray[np.float64]:
        """Contrast gap (e.g. Male - Female), recomputed from the member rows."""
        return self.row(self.contrast[0]) - self.row(self.contrast[1])


# Config wordings of a group value -> the paper's (after _norm), where they differ in words.
_VALUE_ALIASES = {"lessthanhighschool": "<highschool", "center": "centered", "centre": "centered"}


def _norm(text: str) -> str:
    # Typographic apostrophes, case, spaces and hyphens vary between the paper and configs.
    t = text.strip().lower().replace("\u2019", "'")
    for ch in "' -_":
        t = t.replace(ch, "")
    return t


def _norm_value(text: str) -> str:
    t = _norm(text).removesuffix("degree")  # "master's degree" is the paper's "Master's"
    return _VALUE_ALIASES.get(t, t)


@lru_cache(maxsize=4)
def load_human_reference(path: Path = REFERENCE_PATH) -> dict[str, HumanGroup]:
    """The shipped ESS reference, keyed by group name."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(
            f"cannot read the human reference {path} ({exc}); reinstall vpbatch to restore it"
        ) from exc
    out: dict[str, HumanGroup] = {}
    for name, g in raw["groups"].items():
        members = tuple(g["members"])
        deltas = np.array([[g["deltas"][m][d] for d in PVQ] for m in members], dtype=np.float64)
        out[name] = HumanGroup(
            name=name,
            label=g["label"],
            table=int(g["table"]),
            members=members,
            contrast=(g["contrast"][0], g["contrast"][1]),
            deltas=deltas,
        )
    return out


def match_persona(
    persona: str, *, paper_group: str | None = None, paper_value: str | None = None
) -> tuple[str, str] | None:
    """(group, member) of the reference for a persona name, or None if ESS has no such row.

    `persona` is `<group>=<value>` (a `persona:` prefix is allowed); explicit `paper_group` /
    `paper_value` from the persona config win over the name.
    """
    name = persona.removeprefix(PERSONA_PREFIX)
    group, _, value = name.partition("=")
    group_key = _GROUP_ALIASES.get(_norm(paper_group or group))
    if group_key is None:
        return None
    ref = load_human_reference().get(group_key)
    if ref is None:
        return None
    wanted = _norm_value(paper_value or value)
    for member in ref.members:
        if _norm_value(member) == wanted:
            return group_key, member
    return None
