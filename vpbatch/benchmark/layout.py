"""Where things are: every path inside the upstream Value Portrait data, named once here.

Also where the data root itself is found (`--data`, else `VPBATCH_DATA`, else the cache that
`vpbatch data fetch` fills) and the pinned manifest that says which files, at which commit.
Nothing else in vpbatch spells an upstream path.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

from vpbatch.benchmark.dims import FAMILIES, VERSIONS
from vpbatch.errors import DataError

__all__ = [
    "TAGGED",
    "CORRELATIONS",
    "PROMPTS",
    "OUTPUTS",
    "AUTHORS_SCORES",
    "SURVEY",
    "VALUE_SCORES",
    "prompt_template",
    "CORE",
    "OUTPUTS_GROUP",
    "SCORES_GROUP",
    "ManifestFile",
    "Manifest",
    "load_manifest",
    "cache_dir",
    "resolve_data_dir",
]

# -- inside a data root ----------------------------------------------------------------------
TAGGED: Final = "data/query-response-tagged/query-response-tagged.json"  # the 520 items
CORRELATIONS: Final[dict[str, str]] = {  # family -> Spearman r and p per (item, dimension)
    f: f"data/correlation_results/{f}_correlation_results.json" for f in FAMILIES
}
PROMPTS: Final = "lm_evaluation/prompts"  # <version>/<kind>_prompt.txt
OUTPUTS: Final = "lm_evaluation/outputs/final"  # <provider>/<model>_<version>_results.json[.xz]
AUTHORS_SCORES: Final = "lm_evaluation/score_results/final_results_0.3_pos_centered"
SURVEY: Final = "data/prolific/survey/main/survey.json"  # the raters' item ratings
VALUE_SCORES: Final = "data/prolific/value/main/value.json"  # the raters' PVQ-21 and BFI scores


def prompt_template(version: str, kind: str) -> str:
    """The template file of a prompt version and item kind ("reddit" | "sharegpt")."""
    return f"{PROMPTS}/{version}/{kind}_prompt.txt"


# -- the pinned manifest ---------------------------------------------------------------------
CORE: Final = "core"  # what `run` and `score` need
OUTPUTS_GROUP: Final = "outputs"  # the authors' recorded answers (import-official, sim replay)
SCORES_GROUP: Final = "scores"  # the authors' scores of those answers (AUTHORS_SCORES), the
# golden numbers the scorer is checked against; fetched with the outputs


@dataclass(frozen=True, slots=True)
class ManifestFile:
    path: str  # as in the upstream repository
    sha256: str  # of the upstream file (for outputs: of the decompressed .json)
    size: int
    group: str  # CORE | OUTPUTS_GROUP | SCORES_GROUP


@dataclass(frozen=True, slots=True)
class Manifest:
    repository: str
    commit: str
    files: tuple[ManifestFile, ...]

    def select(self, *, with_outputs: bool = False) -> tuple[ManifestFile, ...]:
        """The core files; with `with_outputs` also the authors' recordings and their scores."""
        return tuple(f for f in self.files if f.group == CORE or with_outputs)

    def outputs_of(self, models: Iterable[str]) -> tuple[ManifestFile, ...]:
        """The recorded outputs of these models (their names in the outputs' file names)."""
        names = {f"{m}_{v}_results.json" for m in models for v in VERSIONS}
        return tuple(
            f for f in self.files
            if f.group == OUTPUTS_GROUP and f.path.rsplit("/", 1)[-1] in names
        )


@functools.cache
def load_manifest() -> Manifest:
    """The manifest shipped inside the package (read once per process)."""
    text = resources.files("vpbatch.benchmark").joinpath("data/manifest.json").read_text()
    raw = json.loads(text)
    files = tuple(ManifestFile(**f) for f in raw["files"])
    return Manifest(repository=raw["repository"], commit=raw["commit"], files=files)


# -- the data root ---------------------------------------------------------------------------
def cache_dir() -> Path:
    """Where `fetch` puts the data: $VPBATCH_CACHE or ~/.cache/vpbatch, then the commit."""
    # The commit is part of the path so that two pinned releases never mix files.
    env = os.environ.get("VPBATCH_CACHE")
    if env:
        base = Path(env).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "vpbatch"
    return base / load_manifest().commit


def looks_like_data(root: Path) -> bool:
    """A data root holds the tagged items file; everything else is read from beside it."""
    return (root / TAGGED).is_file()


def _checked(root: Path, source: str) -> Path:
    root = root.expanduser()
    if not root.is_dir():
        raise DataError(f"{source} points at {root}, which is not a directory; fix the path")
    if not looks_like_data(root):
        raise DataError(
            f"{source} points at {root}, which has no {TAGGED}; point it at the "
            "Value Portrait data root (the folder holding data/ and lm_evaluation/)"
        )
    return root.resolve()


def resolve_data_dir(explicit: str | Path | None = None) -> Path:
    """The data root: `explicit` (--data), else $VPBATCH_DATA, else the fetched cache."""
    if explicit is not None and str(explicit) != "":
        return _checked(Path(explicit), "--data")
    env = os.environ.get("VPBATCH_DATA")
    if env:
        return _checked(Path(env), "VPBATCH_DATA")
    cache = cache_dir()
    if looks_like_data(cache):
        return cache.resolve()
    raise DataError(
        "no Value Portrait data found: pass --data DIR, set VPBATCH_DATA, "
        f"or run `vpbatch data fetch` (it fills {cache})"
    )
