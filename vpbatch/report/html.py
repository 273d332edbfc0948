"""report.html: one self-contained page (inline CSS and SVG, no scripts, no external URLs)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from html import escape
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
    profile_index,
    ran_conditions,
    ran_personas,
)
from vpbatch.report.data import ReportData
from vpbatch.report.markdown import (
    AUDIT_HEADER,
    DESIGN_HEADER,
    EXAMPLE_HEADER,
    FAMILY_TITLES,
    HEALTH_HEADER,
    STEER_HEADER,
    alpha_table,
    audit_rows,
    comparison_rows,
    health_rows,
    percentile_rows,
    persona_summary,
    spread_overview,
    steering_summary,
    version_rows,
)
from vpbatch.report.overview import OVERVIEW_CSS, Row, overview
from vpbatch.report.svg import (
    bar_chart,
    colour,
    heatmap,
    label,
    nice_limit,
    paired_bars,
    percentile_grid,
)
from vpbatch.report.trust_view import (
    TRUST_CSS,
    TRUST_TITLE,
    badge,
    trust_scatter,
    trust_table,
    verdict_of,
)
from vpbatch.scoring.analysis import GroupComparison
from vpbatch.scoring.trust import NOT_REPLICATING

__all__ = ["render"]

_CSS = """
body{font-family:Helvetica,Arial,sans-serif;margin:24px auto;max-width:1400px;color:#222;
 padding:0 16px;line-height:1.4}
h1{font-size:26px;margin-bottom:4px}h2{border-bottom:2px solid #ddd;padding-bottom:4px;
 margin-top:40px}h3{margin-top:28px}h4{margin:18px 0 6px}
p.note{background:#f6f8fa;border-left:4px solid #8aa;padding:8px 12px;max-width:1000px}
p.meta{color:#555}
table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}
th,td{border:1px solid #d0d0d0;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}
td.max{font-weight:bold;background:#fdecea}td.min{font-weight:bold;background:#e8f0fb}
td.diag{outline:2px solid #000;outline-offset:-2px;font-weight:bold}
td.text{text-align:left;white-space:normal;min-width:120px;max-width:460px}
th.text{text-align:left}
.grid{display:flex;flex-wrap:wrap;gap:12px}.chart{border:1px solid #e5e5e5}
.swatch{display:inline-block;width:11px;height:11px;margin:0 4px 0 12px;vertical-align:-1px}
details{margin:8px 0}summary{cursor:pointer;font-weight:bold}
nav ol{columns:2;max-width:700px;list-style:none;padding-left:20px}
"""


_NUMBER = re.compile(r"^([+-]?\$?[\d,]+(\.\d+)?[⋆†]?( \[.*\])?|n/a|—)$")


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], *,
           classes: Iterable[Sequence[str]] | None = None) -> str:
    """An HTML table; `classes` gives a CSS class per body cell (after the first column)."""
    rows = [list(r) for r in rows]
    # A column of words (judged by its first row) gets a left-aligned heading like its cells.
    words = [False, *(not _NUMBER.match(str(x)) for x in rows[0][1:])] if rows else []
    out = ["<table><thead><tr>"]
    out += [f'<th class="text">{escape(str(h))}</th>' if k < len(words) and words[k] else
            f"<th>{escape(str(h))}</th>" for k, h in enumerate(header)]
    out.append("</tr></thead><tbody>")
    cls_rows = iter(classes) if classes is not None else None
    for row in rows:
        cls = next(cls_rows) if cls_rows is not None else [""] * (len(row) - 1)
        out.append(f"<tr><td>{escape(str(row[0]))}</td>")
        for x, c in zip(row[1:], cls, strict=True):
            # Numbers align right; words (reasons, answers) align left and may wrap.
            c = c or ("" if _NUMBER.match(str(x)) else "text")
            out.append(f'<td class="{c}">{escape(str(x))}</td>' if c else
                       f"<td>{escape(str(x))}</td>")
        out.append("</tr>")
    return "".join(out) + "</tbody></table>"


def _legend(dims: Sequence[str]) -> str:
    return "<p>" + "".join(f'<span class="swatch" style="background:{colour(d)}"></span>'
                           f"{escape(label(d))}" for d in dims) + "</p>"


def _note(key: str) -> str:
    return f'<p class="note">{escape(NOTES[key])}</p>'


def _profile_section(rep: ReportData, fam: str, charts: bool = True) -> str:
    a = rep.analysis
    c = profile_index(a)
    dims = FAMILY_DIMS[fam]
    sc = a.scores.score[fam][:, c]
    rows, cls = [], []
    for i, m in enumerate(a.models):
        mk = marks(sc[i])
        cells = (fmt(float(v)) + k for v, k in zip(sc[i], mk, strict=True))
        rows.append([rep.label(m), *cells])
        cls.append(["max" if k == "⋆" else "min" if k == "†" else "" for k in mk])
    out = [_table(["model", *map(label, dims)], rows, classes=cls)]
    if charts:
        lo, hi = a.ci_low[fam][:, c], a.ci_high[fam][:, c]
        lim = nice_limit(np.concatenate([sc.ravel(), lo.ravel(), hi.ravel()]))
        # Folded: with dozens of models the small multiples are detail, not the first view.
        out.append(f"<details><summary>Per-model charts with 95% intervals "
                   f"({len(a.models)} models)</summary>")
        out.append(_legend(dims) + '<div class="grid">')
        cond = a.conditions[c]
        out += [bar_chart(f"{rep.label(m)}: {FAMILY_TITLES[fam]}"
                          + (" (does not replicate: see the trust section)"
                             if verdict_of(a.trust, m, cond) == NOT_REPLICATING else ""),
                          dims, sc[i], lo[i], hi[i], lim=lim) for i, m in enumerate(a.models)]
        out.append("</div></details>")
    return "".join(out)


def _overview_section(rep: ReportData) -> str:
    a = rep.analysis
    c = profile_index(a)
    sc = a.scores.score["pvq"][:, c]
    cond = a.conditions[c]
    rows = [Row(m, sc[i], badge=_badge(verdict_of(a.trust, m, cond)))
            for i, m in enumerate(a.models) if not np.isnan(sc[i]).all()]
    rows += [Row(m, np.asarray(v["pvq"], dtype=np.float64), reference=True)
             for m, v in rep.reference.items()]
    return overview(rows)


def _badge(verdict: str | None) -> str:
    return badge(verdict) if verdict else ""


def _trust_section(rep: ReportData) -> str:
    t = rep.analysis.trust
    if t is None or not t.rows():
        return "<p>No model x condition was run.</p>"
    return (trust_table(t) + '<p class="meta">Click a heading to sort by it (most doubtful '
            "first); the first heading restores the run's order. [Brackets]: cluster-bootstrap "
            "95% intervals, which sit low when the signal is weak (resampling adds noise to "
            "both profiles).</p>" + trust_scatter(t)
            + f'<p class="meta">Solid lines: replicate_min = {t.replicate_min:g}; dashed: '
            f"weak_min = {t.weak_min:g}. Top right replicates; left of or below the dashed "
            "lines does not.</p>")


def _comparison(model: str, g: GroupComparison) -> str:
    a, b = g.contrast
    lim = nice_limit(np.concatenate([g.model_deltas.ravel(), g.human_deltas.ravel()]))
    out = [f"<h4>{escape(g.label)} (paper Table {g.table})</h4>",
           f"<p>r (centred) = <b>{fmt(g.correlation)}</b>, r (raw) = {fmt(g.correlation_raw)}, "
           f"exaggeration ({escape(a)} − {escape(b)}) = "
           f"<b>{fmt(g.exaggeration, sign=False)}</b></p>", '<div class="grid">']
    for k, member in enumerate(g.members):
        out.append(paired_bars(f"{member}: persona − vanilla", PVQ, g.model_deltas[k],
                               g.human_deltas[k], lim=lim, model_name=model))
    if g.model_gap is not None and g.human_gap is not None:
        out.append(paired_bars(f"Gap {a} − {b}", PVQ, g.model_gap, g.human_gap,
                               model_name=model))
    out.append("</div>")
    return "".join(out) + _table(["row", *map(label, PVQ)], comparison_rows(model, g))


def _persona_section(rep: ReportData) -> str:
    a = rep.analysis
    if not a.persona_conditions():
        return "<p>No persona conditions in this run.</p>"
    out = []
    header, rows = persona_summary(rep)
    if rows:
        out += ["<h3>Summary: models against the humans</h3>", _table(header, rows)]
    for m, model in enumerate(a.models):
        ran = ran_personas(a, m)
        if not ran:
            continue  # this model's grid had no personas
        out.append(f"<details><summary>{escape(model)}: {len(ran)} persona(s)</summary>")
        covered: set[str] = set()
        for g in rep.comparisons.get(model, []):
            out.append(_comparison(model, g))
            covered.update(g.conditions)
        rest = [c for c in ran if c not in covered]
        if rest:
            idx = [a.conditions.index(c) for c in rest]
            d, lo, hi = (x["pvq"][m, idx] for x in (a.deltas, a.delta_ci_low, a.delta_ci_high))
            rows = [[c.removeprefix(PERSONA_PREFIX),
                     *(f"{fmt(float(d[k, j]))} [{fmt(float(lo[k, j]))}, {fmt(float(hi[k, j]))}]"
                       for j in range(len(PVQ)))]
                    for k, c in enumerate(rest)]
            out.append("<h4>Other personas (no human reference): delta [95% interval]</h4>")
            out.append(_table(["persona", *map(label, PVQ)], rows))
        out.append("</details>")
    return "".join(out)


def _steering_section(rep: ReportData) -> str:
    a = rep.analysis
    if not a.steer_conditions():
        return "<p>No steering conditions in this run.</p>"
    steered = [m for m in a.models if not np.isnan(a.steering[m]).all()]
    out = ["<h3>Summary</h3>", _table(STEER_HEADER, steering_summary(rep)),
           f"<details><summary>Steering matrices ({len(steered)} models)</summary>",
           '<div class="grid">']
    out += [heatmap(f"{m}: steered − vanilla", PVQ, PVQ, a.steering[m]) for m in steered]
    return "".join(out) + "</div></details>"


def _version_section(rep: ReportData) -> str:
    a = rep.analysis
    c = profile_index(a)
    out = [f"<h3>Spread across versions ({escape(a.conditions[c])})</h3>",
           _table(*spread_overview(rep)), "<h3>Each version, per model</h3>"]
    for m, model in enumerate(a.models):
        out.append(f"<details><summary>{escape(model)}</summary>")
        out.append(_table(["version", *map(label, PVQ)], version_rows(rep, m)))
        out.append("</details>")
    return "".join(out)


def _reliability_section(rep: ReportData) -> str:
    return _table(*alpha_table(rep))


def _humans_section(rep: ReportData) -> str:
    a = rep.analysis
    c = profile_index(a)
    if a.human_note:
        return f"<p><b>No percentiles:</b> {escape(a.human_note)}</p>"
    out = [f"<p>Condition: <b>{escape(a.conditions[c])}</b>. Every condition's percentiles are "
           "in scores.json and scores_long.csv.</p>", '<div class="grid">']
    for fam in FAMILIES:
        out.append(percentile_grid(f"{FAMILY_TITLES[fam]}: percentile among the raters",
                                   a.models, FAMILY_DIMS[fam], a.human_percentile[fam][:, c]))
    out.append("</div><details><summary>The same as a table</summary>")
    for fam in FAMILIES:
        out.append(f"<h4>{FAMILY_TITLES[fam]}</h4>")
        out.append(_table(["model", *map(label, FAMILY_DIMS[fam])], percentile_rows(rep, fam)))
    return "".join(out) + "</details>"


def _conditions_section(rep: ReportData) -> str:
    a = rep.analysis
    out = []
    for m, model in enumerate(a.models):
        ran = ran_conditions(a, m)
        out.append(f"<details><summary>{escape(model)}: {len(ran)} condition(s)</summary>")
        for fam in FAMILIES:
            sc, lo, hi = a.scores.score[fam][m], a.ci_low[fam][m], a.ci_high[fam][m]
            rows = [[cond, *(f"{fmt(float(sc[c, d]))} [{fmt(float(lo[c, d]))}, "
                             f"{fmt(float(hi[c, d]))}]" for d in range(sc.shape[1]))]
                    for c, cond in enumerate(a.conditions) if c in ran]
            out.append(f"<h4>{FAMILY_TITLES[fam]}</h4>")
            out.append(_table(["condition", *map(label, FAMILY_DIMS[fam])], rows))
        out.append("</details>")
    return "".join(out)


def _health_section(rep: ReportData) -> str:
    out = ["<h3>Failures, retries, tokens, cost</h3>", _table(HEALTH_HEADER, health_rows(rep))]
    de = design_effect_rows(rep.analysis)
    if de:
        out += ["<h3>Interval design effect</h3><p>Cluster (query) bootstrap width / item "
                "bootstrap width, profile condition; this report's intervals: "
                f"<b>{escape(rep.analysis.bootstrap)}</b>.</p>", _table(DESIGN_HEADER, de)]
    arows, examples = audit_rows(rep.audit)
    out += ["<h3>Parse audit</h3><p>The official parser (the paper's rule) against the strict "
            "one (refuses echoes, refusals, hedges); examples are answers they disagree on.</p>",
            _table(AUDIT_HEADER, arows)]
    if examples:
        out.append(_table(EXAMPLE_HEADER, examples))
    return "".join(out)


OVERVIEW = ("overview", "Overview: every model × the 10 values")  # the page's lead, unnumbered
TRUST = ("trust", TRUST_TITLE)  # unnumbered too: read before comparing any profile
SECTIONS = (
    ("profiles", "1. Value profiles"),
    ("higher", "2. Higher-order values and Big Five"),
    ("humans", "3. Among the human raters"),
    ("personas", "4. Persona deltas beside the humans"),
    ("steering", "5. Value steering"),
    ("versions", "6. Prompt-version sensitivity"),
    ("reliability", "7. Reliability (Cronbach's alpha)"),
    ("conditions", "8. All conditions"),
    ("health", "9. Run health"),
)


def render(rep: ReportData) -> str:
    """The whole report as one HTML page."""
    a = rep.analysis
    c = profile_index(a)
    body = {
        "profiles": _profile_section(rep, "pvq"),
        "higher": "<h3>Higher-order values</h3>" + _profile_section(rep, "higher_pvq")
        + "<h3>Big Five traits</h3>" + _profile_section(rep, "bfi"),
        "humans": _humans_section(rep),
        "personas": _persona_section(rep),
        "steering": _steering_section(rep),
        "versions": _version_section(rep),
        "reliability": _reliability_section(rep),
        "conditions": _conditions_section(rep),
        "health": _health_section(rep),
    }
    nav = "".join(f'<li><a href="#{k}">{escape(t)}</a></li>'
                  for k, t in (OVERVIEW, TRUST, *SECTIONS))
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        # An empty data: icon stops the browser asking for /favicon.ico.
        '<link rel="icon" href="data:,">',
        f"<title>Value Portrait report: {escape(rep.title)}</title>"
        f"<style>{_CSS}{OVERVIEW_CSS}{TRUST_CSS}</style>",
        "</head><body>",
        f"<h1>Value Portrait report: {escape(rep.title)}</h1>",
        f'<p class="meta">Generated {escape(rep.generated)} from <code>{escape(str(rep.run_dir))}'
        f"</code>. {len(a.models)} model(s), {len(a.conditions)} condition(s), "
        f"{len(a.versions)} prompt version(s), {rep.n_items} items. Profiles show the "
        f"<b>{escape(a.conditions[c])}</b> condition. Scoring rule: "
        f"<code>{escape(a.options.rule)}</code>; bootstrap: {escape(boot_words(a))}. "
        "Data: scores.json, scores_long.csv, scores_by_version.csv.</p>",
        f"<nav><ol>{nav}</ol></nav>",
        f'<section id="{OVERVIEW[0]}"><h2>{escape(OVERVIEW[1])}</h2>'
        f'<p class="note lead">{escape(NOTES[OVERVIEW[0]])}</p>{_overview_section(rep)}</section>',
        f'<section id="{TRUST[0]}"><h2>{escape(TRUST[1])}</h2>{_note(TRUST[0])}'
        f"{_trust_section(rep)}</section>",
    ]
    for key, title in SECTIONS:
        parts.append(f'<section id="{key}"><h2>{escape(title)}</h2>{_note(key)}{body[key]}'
                     "</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
