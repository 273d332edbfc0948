"""`make results`: the paper's 33 recorded models as a docs page, from their recorded answers.

Imports the authors' recordings (what `vpbatch import-official` does) into a temporary run dir,
scores it as `vpbatch score` does (the paper's rule, 1,000 query-cluster resamples, seed 0),
and writes, all generated and committed (tests/test_docs.py checks they are up to date):

- docs/img/overview.svg        the report's overview heatmap (the README's picture too)
- docs/results.md              the heatmap, each model among the human raters, its verdict
- docs/reference/scores-json.md  the keys of scores.json, from this very document
- docs/reference/export.md     the export tables' schema, as `vpbatch export` writes schema.json

Needs no key and no network beyond the data fetch (`make data`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from vpbatch.benchmark import layout  # noqa: E402
from vpbatch.benchmark.dims import FAMILY_DIMS, PVQ, VANILLA  # noqa: E402
from vpbatch.benchmark.ensure import ensure_data  # noqa: E402
from vpbatch.errors import VPBatchError  # noqa: E402
from vpbatch.log.importer import import_official  # noqa: E402
from vpbatch.report.overview import similarity_order  # noqa: E402
from vpbatch.report.svg import heatmap, label  # noqa: E402
from vpbatch.scoring.scorer import ScoreOptions, Scores  # noqa: E402
from vpbatch.scoring.scores_file import score_run  # noqa: E402

__all__ = ["build", "overview_svg", "results_page", "scores_reference", "export_reference",
           "OUTPUTS"]

DOCS = REPO / "docs"
OUTPUTS = {
    "svg": DOCS / "img" / "overview.svg",
    "results": DOCS / "results.md",
    "scores": DOCS / "reference" / "scores-json.md",
    "export": DOCS / "reference" / "export.md",
}
N_BOOT, SEED = 1000, 0
TRUST = "trust"  # models.<m>.<condition>.trust, where the run has the trust panel


def _vanilla(doc: Mapping[str, Any], family: str, field: str) -> tuple[list[str], np.ndarray]:
    """(models, (M, D) array of `field`) for the vanilla condition; NaN where null."""
    # A model whose vanilla answers were all unrated has a trust panel there but no scores.
    models = [m for m, conds in doc["models"].items() if family in conds.get(VANILLA, {})]
    dims = FAMILY_DIMS[family]
    x = np.array([[np.nan if (v := doc["models"][m][VANILLA][family][d].get(field)) is None
                   else v for d in dims] for m in models], dtype=np.float64)
    return models, x


def overview_svg(doc: Mapping[str, Any]) -> str:
    """The overview heatmap: every model x the 10 values, similar profiles adjacent."""
    models, x = _vanilla(doc, "pvq", "score")
    order = similarity_order(x)
    left = 16 + 7 * max(len(m) for m in models)
    svg = heatmap("Centred PVQ scores of the paper's recorded models (vanilla)",
                   [models[i] for i in order], list(PVQ), x[order], row_caption="model",
                   col_caption="value", mark_diagonal=False, left=left,
                   tip="{row}, {col}")
    # A file of its own (an <img>, the README) needs the namespace that inline SVG may omit.
    return svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1) + "\n"


def _trust(doc: Mapping[str, Any], model: str) -> dict[str, Any] | None:
    t = doc["models"][model].get(VANILLA, {}).get(TRUST)
    return t if isinstance(t, dict) else None


def _pct(v: float) -> str:
    return "—" if np.isnan(v) else f"{v:.0f}"


def _percentile_table(doc: Mapping[str, Any], family: str, trust: bool) -> list[str]:
    models, x = _vanilla(doc, family, "human_percentile")
    dims = FAMILY_DIMS[family]
    head = ["model", *(label(d) for d in dims)] + (["verdict"] if trust else [])
    out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for m, row in zip(models, x, strict=True):
        cells = [f"`{m}`", *(_pct(float(v)) for v in row)]
        if trust:
            t = _trust(doc, m)
            cells.append(str(t.get("verdict", "not measured")) if t else "not measured")
        out.append("| " + " | ".join(cells) + " |")
    return out


# The trust panel's headline fields, in the order the table shows them (others: scores.json).
TRUST_FIELDS = ("order_bias", "order_item_rho", "order_profile_rho", "wording_profile_rho",
                "straightlining", "rated_share")


def _cell(v: Any) -> str:
    if v is None:
        return "—"
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def _trust_table(doc: Mapping[str, Any]) -> list[str]:
    models = [m for m in doc["models"] if _trust(doc, m)]
    keys = [k for k in TRUST_FIELDS if any(k in (_trust(doc, m) or {}) for m in models)]
    out = ["| model | verdict | " + " | ".join(f"`{k}`" for k in keys) + " |",
           "|" + " --- |" * (len(keys) + 2)]
    for m in models:
        t = _trust(doc, m) or {}
        out.append(f"| `{m}` | {t.get('verdict', '')} | "
                   + " | ".join(_cell(t.get(k)) for k in keys) + " |")
    return out


def results_page(doc: Mapping[str, Any], agreement: tuple[int, int] | None) -> str:
    """docs/results.md: what vpbatch gives for the paper's models, as a researcher cites it."""
    models = list(doc["models"])
    trust = any(_trust(doc, m) for m in models)
    a = doc["answers"]
    out = [
        "# Results: the paper's 33 recorded models", "",
        "<!-- Generated by `make results` (tools/results_page.py); do not edit. -->", "",
        f"What vpbatch measures, on the answers the paper's authors recorded for their "
        f"{len(models)} models (6 prompt versions x 520 items each; {a['ok']:,} answers "
        f"scored, {a['failed']:,} failed or unparseable). They were imported as "
        "`vpbatch import-official` imports them and scored as `vpbatch score` scores a run: "
        f"the paper's rule (r > {doc['options']['threshold']} and p < "
        f"{doc['options']['p_max']}), bootstrap intervals over the 104 queries "
        f"({doc['bootstrap']['n_boot']:,} resamples, seed {doc['bootstrap']['seed']}). Your "
        "own run gives the same page in its report: `vpbatch report RUN --reference paper` "
        "sets your models among these.", "",
    ]
    if agreement is not None:
        n, total = agreement
        out += [f"The paper's Table 2 from these scores: **{n} of {total} cells** match to the "
                "printed two decimals ([why not all](guides/scoring.md#reproducing-the-paper)).",
                ""]
    out += [
        "## Value profiles", "",
        "![Centred PVQ scores of the recorded models](img/overview.svg)", "",
        "Each row is a model's centred score on the 10 Schwartz values under the plain prompt "
        "(its rating of a value's items minus its mean rating; red above the model's own "
        "average, blue below). Rows are ordered so that similar profiles sit together.", "",
        "## Among the human raters", "",
        "Where each model sits among the survey's human raters, as a percentile (0-100; 50 is "
        "the median rater): the model answers the same items the raters did, and is scored "
        "with them ([how](guides/scoring.md#scoring), step 7)."
        + (" The verdict says whether the model's profile holds up when the prompt's option "
           "order and wording change ([trust panel](#trust))." if trust else ""), "",
        "### The 10 values", "",
        *_percentile_table(doc, "pvq", trust), "",
        "### Big Five", "",
        *_percentile_table(doc, "bfi", False), "",
    ]
    if trust:
        out += ["## Trust", "",
                "The trust panel of each model's plain-prompt answers (every field, with its "
                "intervals: `models.<model>.vanilla.trust` in scores.json).", "",
                *_trust_table(doc), ""]
    return "\n".join(out)


def _shape(x: Any) -> Any:
    """A value's shape: type names for leaves, keys for tables, one entry for lists."""
    if isinstance(x, dict):
        return {k: _shape(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_shape(x[0])] if x else []
    return {bool: "boolean", int: "integer", float: "number", str: "string",
            type(None): "null"}[type(x)]


def _merge(a: Any, b: Any) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: _merge(a[k], b[k]) if k in a and k in b else a.get(k, b.get(k))
                for k in {**a, **b}}
    if a == b:
        return a
    return " or ".join(sorted(set(f"{a} or {b}".split(" or "))))


# Where scores.json's keys are names (models, conditions, families, dimensions), not fields.
_VARIABLE = {
    ("models",): "<model>",
    ("models", "<model>"): "<condition>",
    ("models", "<model>", "<condition>"): "<family>",
    ("models", "<model>", "<condition>", "<family>"): "<dimension>",
    ("answers", "failed_by_model"): "<model>",
    ("answer_modes",): "<model>",
    ("alpha",): "<family>",
    ("alpha", "<family>"): "<dimension>",
    ("alpha_scoring_rule",): "<family>",
    ("alpha_scoring_rule", "<family>"): "<dimension>",
    ("bootstrap", "design_effect"): "<family>",
}


def _collapse(x: Any, path: tuple[str, ...] = ()) -> Any:
    if not isinstance(x, dict):
        return x
    name = _VARIABLE.get(path)
    if name is None:
        return {k: _collapse(v, (*path, k)) for k, v in x.items()}
    merged: Any = None
    for k, v in x.items():
        if path[-1:] == ("<condition>",) and k == TRUST:
            continue  # the trust panel sits beside the families
        merged = v if merged is None else _merge(merged, v)
    out = {name: _collapse(merged, (*path, name))}
    if path[-1:] == ("<condition>",) and TRUST in x:
        out[TRUST] = _collapse(x[TRUST], (*path, TRUST))
    return out


def _paths(x: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(x, dict):
        return [p for k, v in x.items() for p in _paths(v, f"{prefix}.{k}" if prefix else k)]
    return [(prefix, x if isinstance(x, str) else "list")]


def scores_reference(doc: Mapping[str, Any]) -> str:
    """docs/reference/scores-json.md: every key path of scores.json with its JSON type."""
    rows = _paths(_collapse(_shape(doc)))
    out = ["# scores.json", "",
           "<!-- Generated by `make results` (tools/results_page.py); do not edit. -->", "",
           "`vpbatch score RUN_DIR` (and `make run`) writes `RUN_DIR/scores.json`. Every key "
           "below is taken from the document it wrote for the "
           "[paper's recorded models](../results.md), so the list cannot drift from the "
           "code; `<model>`, `<condition>` (`vanilla`, `persona:<group>=<value>`, "
           "`steer:<Dimension>`), `<family>` (`pvq`, `higher_pvq`, `bfi`) and `<dimension>` "
           "stand for names. What the fields mean: [The run dir](../guides/run-dir.md).", "",
           "| key | JSON type |", "| --- | --- |"]
    out += [f"| `{p}` | {t} |" for p, t in sorted(rows)]
    return "\n".join(out) + "\n"


def _doc_cell(text: str) -> str:
    return escape(text, quote=False).replace("|", "/")  # `<group>` is text; `|` ends a cell


def export_reference(schema: Mapping[str, Any]) -> str:
    """docs/reference/export.md: the schema.json `vpbatch export` writes, as tables."""
    out = ["# Export tables", "",
           "<!-- Generated by `make results` (tools/results_page.py); do not edit. -->", "",
           "`vpbatch export RUN_DIR` (and `vpbatch.export(...)`) writes these tables as "
           "Parquet or CSV, plus `schema.json`, which holds exactly what this page shows "
           f"(schema version {schema['schema_version']}: columns are only ever added, never "
           "renamed, retyped or dropped). A type ending in `?` may be null. In Python: "
           "[The Python API](../guides/python-api.md).", ""]
    for name, cols in schema["tables"].items():
        out += [f"## `{name}`", "", "| column | type | meaning |", "| --- | --- | --- |"]
        out += [f"| `{c['name']}` | `{c['type']}` | {_doc_cell(c['doc'])} |" for c in cols]
        out.append("")
    return "\n".join(out)


def _agreement(scores: Scores) -> tuple[int, int] | None:
    """(cells matching the paper's Table 2 to its printed decimals, cells checked)."""
    from vpbatch.demos.demo import paper_agreement, paper_table2

    n, off = paper_agreement(scores, paper_table2())
    return (n - len(off), n) if n else None


def build(root: Path | None = None) -> dict[str, str]:
    """Import, score and render: {output key: text}."""
    from vpbatch.api import EXPORTED, load
    from vpbatch.report.export import schema_doc

    data = ensure_data(root, with_outputs=True)
    with tempfile.TemporaryDirectory(prefix="vpbatch-results-") as tmp:
        run_dir = Path(tmp)
        import_official(data / layout.OUTPUTS, run_dir)
        doc, scores, _ = score_run(run_dir, ScoreOptions(), data=data, n_boot=N_BOOT, seed=SEED)
        agreement = _agreement(scores)
        run = load(run_dir, boot=0, data=data)
        tables = {n: getattr(run, n) for n in EXPORTED}  # what `vpbatch export` writes
        schema = schema_doc(tables)
    return {"svg": overview_svg(doc), "results": results_page(doc, agreement),
            "scores": scores_reference(doc), "export": export_reference(schema)}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=None, help="the Value Portrait data root")
    args = p.parse_args(argv)
    try:
        pages = build(args.data)
    except VPBatchError as exc:  # no data and no network: one line, as the CLI says it
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for key, text in pages.items():
        OUTPUTS[key].parent.mkdir(parents=True, exist_ok=True)
        OUTPUTS[key].write_text(text)
        print(f"wrote {OUTPUTS[key].relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
