"""report.md: the report as Markdown tables (the charts are in report.html)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from vpbatch.benchmark.conditions import PERSONA_PREFIX
from vpbatch.benchmark.dims import FAMILIES, FAMILY_DIMS, PVQ
from vpbatch.report.common import (
    NOTES,
    boot_words,
    design_effect_rows,
    fmt,
    marks,
    nanmean0,
    profile_index,
    ran_conditions,
    ran_personas,
)
from vpbatch.report.data import ReportData
from vpbatch.report.svg import label
from vpbatch.report.trust_view import TRUST_TITLE, trust_header, trust_rows
from vpbatch.scoring.analysis import GroupComparison
from vpbatch.scoring.reliability import describe_items

__all__ = [
    "render",
    "alpha_table",
    "percentile_rows",
    "DESIGN_HEADER",
    "table",
    "audit_rows",
    "spread_overview",
    "health_rows",
    "persona_summary",
    "steering_summary",
    "HEALTH_HEADER",
    "STEER_HEADER",
    "version_rows",
    "AUDIT_HEADER",
    "EXAMPLE_HEADER",
    "FAMILY_TITLES",
]

FAMILY_TITLES = {"pvq": "Schwartz values", "higher_pvq": "Higher-order values",
                 "bfi": "Big Five traits"}


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """A GitHub-flavoured Markdown table; pipes in cells are escaped."""
    def cell(x: Any) -> str:
        return str(x).replace("|", "\\|")

    out = ["| " + " | ".join(map(cell, header)) + " |",
           "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return out + [""]


def _marked(row: np.ndarray) -> list[str]:
    return [fmt(float(v)) + m for v, m in zip(row, marks(row), strict=True)]


def _profiles(rep: ReportData, fam: str) -> list[str]:
    a = rep.analysis
    c = profile_index(a)
    dims = FAMILY_DIMS[fam]
    rows = [[rep.label(m), *_marked(a.scores.score[fam][i, c])]
            for i, m in enumerate(a.models)]
    return table(["model", *map(label, dims)], rows)


def _comparison(model: str, g: GroupComparison) -> list[str]:
    a, b = g.contrast
    out = [f"#### {g.label} (paper Table {g.table})", "",
           f"r (centred) = {fmt(g.correlation)}, r (raw) = {fmt(g.correlation_raw)}, "
           f"exaggeration ({a} − {b}) = {fmt(g.exaggeration, sign=False)}", ""]
    return out + table(["row", *map(label, PVQ)], comparison_rows(model, g))


def comparison_rows(model: str, g: GroupComparison) -> list[list[str]]:
    """The model's persona deltas interleaved with the humans', then both contrast gaps."""
    a, b = g.contrast
    rows: list[list[str]] = []
    for k, member in enumerate(g.members):
        rows.append([f"{model}: {member}", *(fmt(float(v)) for v in g.model_deltas[k])])
        rows.append([f"humans: {member}", *(fmt(float(v)) for v in g.human_deltas[k])])
    if g.model_gap is not None and g.human_gap is not None:
        rows.append([f"{model}: {a} − {b}", *(fmt(float(v)) for v in g.model_gap)])
        rows.append([f"humans: {a} − {b}", *(fmt(float(v)) for v in g.human_gap)])
    return rows


def persona_summary(rep: ReportData) -> tuple[list[str], list[list[str]]]:
    """One row per model with personas: r and exaggeration per ESS group it covers."""
    groups: list[tuple[str, str]] = []
    for comps in rep.comparisons.values():
        for g in comps:
            if (g.group, g.label) not in groups:
                groups.append((g.group, g.label))
    header = ["model"]
    for _, lab in groups:
        header += [f"{lab}: r", f"{lab}: exaggeration"]
    rows = []
    for model, comps in rep.comparisons.items():
        by = {g.group: g for g in comps}
        if not by:
            continue
        row = [model]
        for key, _ in groups:
            hit = by.get(key)
            row += ([fmt(hit.correlation), fmt(hit.exaggeration, sign=False)] if hit
                    else ["—", "—"])
        rows.append(row)
    return header, rows


def _personas(rep: ReportData) -> list[str]:
    a = rep.analysis
    out = ["## 4. Persona deltas beside the humans", "", NOTES["personas"], ""]
    if not a.persona_conditions():
        return out + ["No persona conditions in this run.", ""]
    header, rows = persona_summary(rep)
    if rows:
        out += ["### Summary: models against the humans", ""] + table(header, rows)
    for m, model in enumerate(a.models):
        ran = ran_personas(a, m)
        if not ran:
            continue  # this model's grid had no personas
        out += [f"### {model}", ""]
        covered = set()
        for g in rep.comparisons.get(model, []):
            out += _comparison(model, g)
            covered.update(g.conditions)
        rest = [c for c in ran if c not in covered]
        if rest:
            out += ["#### Other personas (no human reference)", ""]
            rows = [[c.removeprefix(PERSONA_PREFIX),
                     *(fmt(float(v)) for v in a.deltas["pvq"][m, a.conditions.index(c)])]
                    for c in rest]
            out += table(["persona", *map(label, PVQ)], rows)
    return out


STEER_HEADER = ["model", "values steered", "diagonal is the row's largest", "mean diagonal",
                "mean off-diagonal"]


def steering_summary(rep: ReportData) -> list[list[str]]:
    """Per steered model: how often the asked-for value moved most, and by how much."""
    rows = []
    for model in rep.analysis.models:
        mat = rep.analysis.steering[model]
        run = ~np.isnan(mat).all(axis=1)
        if not run.any():
            continue
        sub = mat[run]
        diag = mat.diagonal()[run]
        hits = int((np.nanargmax(sub, axis=1) == np.flatnonzero(run)).sum())
        off = mat[run][~np.eye(len(PVQ), dtype=bool)[run]]
        rows.append([model, str(int(run.sum())), f"{hits} of {int(run.sum())}",
                     fmt(float(np.nanmean(diag))), fmt(float(np.nanmean(off)))])
    return rows


def _steering(rep: ReportData) -> list[str]:
    a = rep.analysis
    out = ["## 5. Value steering", "", NOTES["steering"], ""]
    if not a.steer_conditions():
        return out + ["No steering conditions in this run.", ""]
    out += ["### Summary", ""] + table(STEER_HEADER, steering_summary(rep))
    for model in a.models:
        mat = a.steering[model]
        if np.isnan(mat).all():
            continue
        rows = []
        for i, r in enumerate(PVQ):
            cells = [fmt(float(v)) for v in mat[i]]
            cells[i] = f"**{cells[i]}**"  # the diagonal: the value that was asked for
            rows.append([label(r), *cells])
        out += [f"### {model}", "", "Rows: steered value; columns: measured value; "
                "diagonal in bold.", ""]
        out += table(["steered ↓ / measured →", *map(label, PVQ)], rows)
    return out


def spread_overview(rep: ReportData) -> tuple[list[str], list[list[str]]]:
    """One row per model: the SD across versions of each value, and their mean."""
    a = rep.analysis
    c = profile_index(a)
    rows = []
    for m, model in enumerate(a.models):
        sd = a.version_spread["pvq"][m, c]
        rows.append([model, *(fmt(float(x), sign=False) for x in sd),
                     fmt(float(nanmean0(sd)), sign=False)])
    return ["model", *map(label, PVQ), "mean"], rows


def version_rows(rep: ReportData, m: int) -> list[list[str]]:
    """One model's profile under each version, its spread, and (if it ran more) the mean
    spread over all its conditions."""
    a = rep.analysis
    c = profile_index(a)
    vs = a.version_scores["pvq"][m, c]
    rows = [[v, *(fmt(float(x)) for x in vs[k])] for k, v in enumerate(a.versions)]
    rows.append(["spread (SD)", *(fmt(float(x), sign=False)
                                  for x in a.version_spread["pvq"][m, c])])
    ran = ran_conditions(a, m)
    if len(ran) > 1:
        mean_all = nanmean0(a.version_spread["pvq"][m, ran])
        rows.append([f"mean spread, {len(ran)} conditions",
                     *(fmt(float(x), sign=False) for x in mean_all)])
    return rows


def _versions(rep: ReportData) -> list[str]:
    a = rep.analysis
    c = profile_index(a)
    out = ["## 6. Prompt-version sensitivity", "", NOTES["versions"], "",
           f"### Spread across versions ({a.conditions[c]})", ""]
    out += table(*spread_overview(rep))
    for m, model in enumerate(a.models):
        out += [f"### {model}: each version ({a.conditions[c]})", ""]
        out += table(["version", *map(label, PVQ)], version_rows(rep, m))
    return out


def _reliability(rep: ReportData) -> list[str]:
    out = ["## 7. Reliability (Cronbach's alpha)", "", NOTES["reliability"], ""]
    return out + table(*alpha_table(rep))


def alpha_table(rep: ReportData) -> tuple[list[str], list[list[str]]]:
    """Both alphas per dimension, each column headed by the item set it runs over."""
    a = rep.analysis
    header = ["family", "dimension", f"alpha: {describe_items(None, a.options)}",
              f"alpha: {describe_items(a.options, a.options)}"]
    rows = [[FAMILY_TITLES[f], label(d), fmt(float(a.alpha[f][k]), sign=False),
             fmt(float(a.alpha_rule[f][k]), sign=False) if a.alpha_rule else "n/a"]
            for f in FAMILIES for k, d in enumerate(FAMILY_DIMS[f])]
    return header, rows


def percentile_rows(rep: ReportData, fam: str) -> list[list[str]]:
    """One row per model: its human percentile per dimension (profile condition), whole."""
    a = rep.analysis
    c = profile_index(a)
    pct = a.human_percentile[fam][:, c]
    return [[m, *("n/a" if np.isnan(v) else f"{v:.0f}" for v in pct[i])]
            for i, m in enumerate(a.models)]


def _humans(rep: ReportData) -> list[str]:
    a = rep.analysis
    c = profile_index(a)
    out = [f"## 3. Among the human raters ({a.conditions[c]})", "", NOTES["humans"], ""]
    if a.human_note:
        return out + [f"No percentiles: {a.human_note}", ""]
    for fam in FAMILIES:
        out += [f"### {FAMILY_TITLES[fam]}: percentile among the raters", ""]
        out += table(["model", *map(label, FAMILY_DIMS[fam])], percentile_rows(rep, fam))
    return out


def _conditions(rep: ReportData) -> list[str]:
    a = rep.analysis
    out = ["## 8. All conditions", "", NOTES["conditions"], ""]
    for m, model in enumerate(a.models):
        ran = ran_conditions(a, m)
        out += [f"### {model}", ""]
        for fam in FAMILIES:
            sc, lo, hi = a.scores.score[fam][m], a.ci_low[fam][m], a.ci_high[fam][m]
            rows = [[cond, *(f"{fmt(float(sc[c, d]))} [{fmt(float(lo[c, d]))}, "
                             f"{fmt(float(hi[c, d]))}]" for d in range(sc.shape[1]))]
                    for c, cond in enumerate(a.conditions) if c in ran]
            out += [f"{FAMILY_TITLES[fam]}:", ""]
            out += table(["condition", *map(label, FAMILY_DIMS[fam])], rows)
    return out


AUDIT_HEADER = ["model", "answers", "no answer", "official parsed", "strict parsed",
                "disagree", "strict refusals by reason", "disagreements by kind"]
EXAMPLE_HEADER = ["model", "kind", "answer (first 80 chars)", "official", "strict", "item",
                  "version"]


def _counts(d: dict[str, int]) -> str:
    return ", ".join(f"{k} ×{n}" for k, n in list(d.items())[:5]) or "—"


def audit_rows(audit: dict[str, Any]) -> tuple[list[list[str]], list[list[str]]]:
    """The parse audit (vpbatch.scoring.audit.ModelAudit per model) as summary and example rows."""
    rows, examples = [], []
    for model, au in audit.items():
        d = au.to_dict()
        rows.append([model, str(d["n"]), str(d["n_failed"]), str(d["n_official_ok"]),
                     str(d["n_strict_ok"]), str(d["n_disagree"]), _counts(d["reasons"]),
                     _counts(d["disagreements"])])
        for kind, exs in d["examples"].items():
            for e in exs:
                raw = " ".join(str(e["raw"]).split())
                examples.append([model, kind, raw[:80] + ("…" if len(raw) > 80 else ""),
                                 str(e["official"]), str(e["strict"]),
                                 f"{e['portrait_id']}/{e['option_id']}", str(e["version"])])
    return rows, examples


DESIGN_HEADER = ["family", "median", "lowest", "highest", "model × dimension cells"]
HEALTH_HEADER = ["model", "jobs", "parsed", "unparseable", "failed", "failure reasons",
                 "retries", "prompt tokens", "completion tokens", "reasoning tokens", "cost"]


def health_rows(rep: ReportData) -> list[list[str]]:
    """Per model, then a total: jobs by outcome, failure reasons, retries, tokens, cost."""
    rows = []
    for model, st in rep.stats.items():
        reasons = ", ".join(f"{k} ×{n}" for k, n in st.failure_reasons.most_common(4)) or "—"
        cost = "no price in config" if st.cost_usd is None else f"${st.cost_usd:.2f}"
        rows.append([rep.label(model), str(st.jobs), str(st.ok), str(st.unparseable),
                     str(st.failed),
                     reasons, str(st.retries), f"{st.prompt_tokens:,}",
                     f"{st.completion_tokens:,}", f"{st.reasoning_tokens:,}", cost])
    if len(rep.stats) > 1:
        sts = list(rep.stats.values())

        def total(key: str) -> int:
            return int(sum(getattr(st, key) for st in sts))

        priced = [st.cost_usd for st in sts if st.cost_usd is not None]
        cost = "no price in config" if not priced else f"${sum(priced):.2f}" + (
            "" if len(priced) == len(sts) else " (priced models)")
        rows.append(["total", *(str(total(k)) for k in ("jobs", "ok", "unparseable", "failed")),
                     "", str(total("retries")),
                     *(f"{total(k):,}" for k in ("prompt_tokens", "completion_tokens",
                                                 "reasoning_tokens")), cost])
    return rows


def _health(rep: ReportData) -> list[str]:
    out = ["## 9. Run health", "", NOTES["health"], "", "### Failures, retries, tokens, cost", ""]
    out += table(HEALTH_HEADER, health_rows(rep))
    de = design_effect_rows(rep.analysis)
    if de:
        out += ["### Interval design effect", "", "Cluster (query) bootstrap width / item "
                f"bootstrap width, profile condition; this report's intervals: "
                f"{rep.analysis.bootstrap}.", ""]
        out += table(DESIGN_HEADER, de)
    arows, examples = audit_rows(rep.audit)
    out += ["### Parse audit", "", "The official parser (the paper's rule) against the strict one "
            "(refuses echoes, refusals, hedges); examples are answers they disagree on.", ""]
    out += table(AUDIT_HEADER, arows)
    if examples:
        out += table(EXAMPLE_HEADER, examples)
    return out


def _reference(rep: ReportData) -> list[str]:
    """The paper's recorded models (`--reference paper`), in the same layout."""
    if not rep.reference:
        return []
    rows = [[m, *(fmt(float(x)) for x in v["pvq"])] for m, v in rep.reference.items()]
    return ["### Reference: the paper's recorded models (vanilla)", "",
            "Scored from the authors' recorded outputs under the same rule.", "",
            *table(["model", *map(label, PVQ)], rows), ""]


def _trust(rep: ReportData) -> list[str]:
    t = rep.analysis.trust
    out = [f"## {TRUST_TITLE}", "", NOTES["trust"], ""]
    if t is None or not t.rows():
        return [*out, "No model x condition was run.", ""]
    out += [f"Thresholds: replicate_min = {t.replicate_min:g}, weak_min = {t.weak_min:g}; "
            "[brackets]: cluster-bootstrap 95% intervals. The scatter is in report.html.", ""]
    return out + table(trust_header(t), trust_rows(t))


def render(rep: ReportData) -> str:
    """The whole report as Markdown."""
    a = rep.analysis
    c = profile_index(a)
    head = [
        f"# Value Portrait report: {rep.title}", "",
        f"Generated {rep.generated} from `{rep.run_dir}`. {len(a.models)} model(s), "
        f"{len(a.conditions)} condition(s), {len(a.versions)} prompt version(s), "
        f"{rep.n_items} items. Scoring rule: `{a.options.rule}`; bootstrap: {boot_words(a)}. "
        "Charts: report.html. Long table: "
        "scores_long.csv.", "", *_trust(rep),
        f"## 1. Value profiles ({a.conditions[c]})", "", NOTES["profiles"], "",
    ]
    body = _profiles(rep, "pvq") + _reference(rep)
    body += [f"## 2. Higher-order values and Big Five ({a.conditions[c]})", "", NOTES["higher"],
             ""]
    body += ["### Higher-order values", ""] + _profiles(rep, "higher_pvq")
    body += ["### Big Five traits", ""] + _profiles(rep, "bfi")
    body += _humans(rep) + _personas(rep) + _steering(rep) + _versions(rep) + _reliability(rep)
    body += _conditions(rep) + _health(rep)
    return "\n".join(head + body).rstrip() + "\n"
