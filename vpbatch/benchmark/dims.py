"""The benchmark's fixed vocabulary: dimensions per family, prompt versions, answer phrases."""

from __future__ import annotations

from typing import Final

__all__ = [
    "PVQ",
    "HIGHER_PVQ",
    "BFI",
    "FAMILIES",
    "FAMILY_DIMS",
    "VERSIONS",
    "PHRASES",
    "VANILLA",
]

# Names exactly as the dataset spells them (SPEC §1); order = the paper's Table 2 columns.
PVQ: Final = (
    "Universalism",
    "Benevolence",
    "Conformity",
    "Tradition",
    "Security",
    "Power",
    "Achievement",
    "Hedonism",
    "Stimulation",
    "Self_Direction",
)
HIGHER_PVQ: Final = ("Self_Enhancement", "Self_Transcendence", "Conservation", "Openness_to_Change")
BFI: Final = ("Openness", "Conscientiousness", "Extraversion", "Agreeableness", "Neuroticism")

# Family keys as they appear in scores.json.
FAMILIES: Final = ("pvq", "higher_pvq", "bfi")
FAMILY_DIMS: Final[dict[str, tuple[str, ...]]] = {"pvq": PVQ, "higher_pvq": HIGHER_PVQ, "bfi": BFI}

VERSIONS: Final = ("v1", "v1_reversed", "v2", "v2_reversed", "v3", "v3_reversed")

# Answer phrase -> rating, most agreeing first.
PHRASES: Final[dict[str, int]] = {
    "very much like me": 6,
    "like me": 5,
    "somewhat like me": 4,
    "a little like me": 3,
    "not like me": 2,
    "not like me at all": 1,
}

VANILLA: Final = "vanilla"
