"""What report.md and report.html share: section notes, number formats and row pickers."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from vpbatch.benchmark.dims import VANILLA
from vpbatch.scoring.analysis import Analysis

__all__ = [
    "boot_words",
    "design_effect_rows",
    "fmt",
    "marks",
    "profile_index",
    "nanmean0",
    "ran_conditions",
    "ran_personas",
    "NOTES",
    "CSV_NAME",
    "CSV_VERSIONS_NAME",
]

CSV_NAME = "scores_long.csv"
CSV_VERSIONS_NAME = "scores_by_version.csv"

# What each section means, shared by report.md and report.html so they never disagree.
NOTES: dict[str, str] = {
    "overview": (
        "Every model's centred value profile under the plain prompt, one row each, in one "
        "picture: red above the model's own average, blue below. Rows that sit together have "
        "similar profiles (clustered by correlation); click a value to rank the models by it. "
        "Below, each section opens with its summary; the per-model detail is folded."
    ),
    "trust": (
        "A value profile means something only if it survives a change the model should not "
        "care about. Each item was asked in three wordings, each with the answer phrases in "
        "both orders: the profile from one order is compared (Spearman over the 10 values) "
        "with the profile from the other (order ρ), and each wording's with the others' "
        "(wording ρ). Both at least replicate_min: replicates; either below weak_min, or "
        "undefined: does not replicate, and that profile should not be compared with "
        "anything; otherwise weak. Order bias: the mean rating shift, in fifths of the scale, "
        "toward the phrase listed first (+) or last (−). Straightlining: the share of answers "
        "that are the commonest rating. Rated: the share of answers that could be rated."
    ),
    "profiles": (
        "Centred scores under the plain (vanilla) prompt, in the layout of the paper's Table 2: "
        "a value's mean rating over its items (those correlating > 0.3 with it under the "
        "scoring rule) minus the mean over all value items, so 0 is the model's average and "
        "the scale is rating points (1-6). ⋆ marks each model's highest value, † its lowest. "
        "Whiskers and [brackets] are bootstrap 95% intervals: by default the 104 queries are "
        "resampled with replacement, each with its 5 responses, since those share one scenario "
        "(`--bootstrap item` resamples the 520 items one by one instead). A model marked "
        "(choice) answered in choice mode: the paper's prompt, a JSON answer constrained to "
        "the six phrases; unmarked models answered in free text, as in the paper."
    ),
    "higher": (
        "Higher-order values (Schwartz) and Big Five traits (BFI), centred the same way within "
        "their family."
    ),
    "humans": (
        "Each model is placed among the survey's raters (Prolific, 12 groups, each shown 8 or 16 "
        "queries): in every group the model's centred score and each rater's are computed over "
        "that group's items (the same items and centring as above), and the model's percentile "
        "there is the share of raters below it plus half of those level with it. Its "
        "percentile is the mean over groups weighted by how many of the group's items count "
        "for the dimension and were answered, so 50 is the median rater: far from 50 means an "
        "emphasis that is unusual for a person, not only high within the model."
    ),
    "personas": (
        "Persona delta = centred score with a demographic system message minus the vanilla "
        "score. Human deltas are the 'Human data' rows of the paper's Tables 4-7 (European "
        "Social Survey round 11): each group's mean minus all participants' mean. r is the "
        "Pearson correlation over the group's cells after centring each value across the "
        "group's members (a persona prompt shifts every member alike; the ESS baseline has no "
        "such shift). Exaggeration = mean |model gap| / mean |human gap| for the contrast shown "
        "(e.g. Male − Female, Left-wing − Right-wing): above 1, the model draws the groups "
        "further apart than people are."
    ),
    "steering": (
        "Row = the value the system message asks the model to hold, column = the value "
        "measured; each cell is steered − vanilla centred score (the paper's Table 10). The "
        "outlined diagonal is the intended effect: a working steer is the largest cell of its "
        "row."
    ),
    "versions": (
        "Each of the 6 prompt versions (option order and wording) scored on its own. Spread is "
        "the standard deviation of the centred score across versions: large values mean the "
        "profile depends on how the question is asked."
    ),
    "reliability": (
        "Cronbach's alpha per dimension, respondents = each model × prompt version of this run "
        "under the vanilla prompt. The first column runs over the items correlating > 0.3 with "
        "the dimension (positive r, no p-value cut), as in the paper's Table 1 (0.76-0.96 over "
        "27 models); the second over the items the scoring rule counts, which the scores use. "
        "Few respondents make it unstable; 0.70 is the usual bar."
    ),
    "conditions": (
        "Every condition of every model with its bootstrap 95% interval; the same numbers, "
        "long-form with the human percentiles, are in scores_long.csv."
    ),
    "health": (
        "Jobs are (model, condition, version, item, repeat) requests; a model marked (choice) "
        "answered in choice mode (a JSON answer constrained to the six phrases), the others "
        "in the paper's free text. Failed = no answer after retries (by reason); "
        "unparseable = an answer that matched no scale phrase, or in choice mode no valid JSON "
        "member (left out of scoring, never guessed). Retries = extra attempts. Cost uses the "
        "config's price_in/price_out (USD per 1M tokens). Design effect = the width of a "
        "query-cluster bootstrap interval over that of an item bootstrap interval (profile "
        "condition): above 1, treating the 520 items as independent would make intervals too "
        "narrow."
    ),
}


def marks(row: Any) -> list[str]:
    """'⋆' on a row's highest value, '†' on its lowest (the paper's Table 2 markers)."""
    vals = [float(v) for v in row]
    ok = [v for v in vals if not math.isnan(v)]
    if len(ok) < 2:
        return [""] * len(vals)
    hi, lo = max(ok), min(ok)
    if hi == lo:  # a flat profile has no highest or lowest value
        return [""] * len(vals)
    return ["⋆" if v == hi else "†" if v == lo else "" for v in vals]


def profile_index(a: Analysis) -> int:
    """The condition the profile tables show: vanilla, else the first one in the log."""
    return a.conditions.index(VANILLA) if VANILLA in a.conditions else 0


def ran_conditions(a: Analysis, m: int) -> list[int]:
    """Indices of the conditions model `m` has scores under (grids may differ per model)."""
    pvq = a.scores.score["pvq"][m]
    return [c for c in range(len(a.conditions)) if not np.isnan(pvq[c]).all()]


def ran_personas(a: Analysis, m: int) -> list[str]:
    """The persona conditions model `m` has scores under."""
    ran = set(ran_conditions(a, m))
    return [c for c in a.persona_conditions() if a.conditions.index(c) in ran]


def boot_words(a: Analysis) -> str:
    """The bootstrap in words, for the reports' opening lines."""
    if a.n_boot <= 0:
        return "none (no intervals)"
    unit = "queries with their 5 responses (cluster)" if a.bootstrap == "cluster" else "items"
    return f"{a.n_boot} resamples of {unit}, seed {a.seed}"


def design_effect_rows(a: Analysis) -> list[list[str]]:
    """Per family: median, lowest and highest cluster/item width ratio over models × dims."""
    rows = []
    for fam, v in a.design_effect.items():
        ok = np.asarray(v, dtype=np.float64)
        ok = ok[np.isfinite(ok)]
        if ok.size:
            rows.append([fam, f"{np.median(ok):.2f}", f"{ok.min():.2f}", f"{ok.max():.2f}",
                         str(ok.size)])
    return rows


def nanmean0(a: Any) -> Any:
    """Mean over axis 0 ignoring NaN; NaN (without a warning) where nothing is left."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(a, axis=0)


def fmt(v: float | None, *, sign: bool = True) -> str:
    """Two decimals, signed by default; 'n/a' for a missing number."""
    if v is None or math.isnan(v):
        return "n/a"
    v = round(float(v), 2) + 0.0  # no "-0.00": a rounded zero is printed as +0.00
    return f"{v:+.2f}" if sign else f"{v:.2f}"
