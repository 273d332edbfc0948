"""The report's "Can these profiles be trusted?": verdict badges, the panel as a sortable
table (CSS only, as the overview sorts), and a scatter of the two profile correlations.

The panel itself is vpbatch.scoring.trust's; this module only draws it.
"""

from __future__ import annotations

from html import escape

import numpy as np

from vpbatch.benchmark.dims import VANILLA
from vpbatch.report.common import fmt
from vpbatch.scoring.trust import (
    FIELD_DOCS,
    FIELDS,
    NOT_MEASURED,
    NOT_REPLICATING,
    REPLICATES,
    RETEST_FIELDS,
    VERDICTS,
    WEAK,
    Trust,
)

__all__ = ["TRUST_TITLE", "TRUST_CSS", "VERDICT_COLOURS", "badge", "verdict_of",
           "trust_table", "trust_scatter", "trust_rows", "trust_header"]

TRUST_TITLE = "Can these profiles be trusted?"
VERDICT_COLOURS = {REPLICATES: "#1b7837", WEAK: "#b8860b", NOT_REPLICATING: "#b2182b",
                   NOT_MEASURED: "#777777"}
_SHORT = {REPLICATES: "replicates", WEAK: "weak", NOT_REPLICATING: "does not replicate",
          NOT_MEASURED: "not measured"}
_HEAD = {"order_bias": "order bias", "order_item_rho": "order ρ (items)",
         "order_profile_rho": "order ρ (profile)", "wording_profile_rho": "wording ρ (profile)",
         "straightlining": "straightlining", "rated_share": "rated",
         "retest_item_rho": "retest ρ (items)", "retest_profile_rho": "retest ρ (profile)"}

TRUST_CSS = (
    ".vb{display:inline-block;border-radius:3px;padding:0 4px;margin-left:6px;color:#fff;"
    "font-size:10px;font-weight:bold;font-style:normal;vertical-align:1px}"
    ".tt i{display:none}.ttrows{display:flex;flex-direction:column}"
    ".ttrow,.tthead{display:grid;grid-template-columns:minmax(200px,320px) 130px "
    "repeat(var(--n),118px);font-size:12px}.ttrow{order:var(--t0)}"
    ".ttrow span,.tthead a{padding:3px 5px;border-bottom:1px solid #e5e5e5;text-align:right;"
    "white-space:nowrap;overflow:hidden;text-overflow:ellipsis}"
    ".ttrow span:first-child,.tthead a:first-child{text-align:left}"
    ".tthead a{background:#f0f0f0;font-weight:bold;color:#1a4d80;text-decoration:none}"
    # One ordering per column: name, verdict, and at most 8 fields (retest included).
    + "".join(f"#tts-{k}:target~.ttrows .ttrow{{order:var(--t{k})}}"
              f'#tts-{k}:target~.tthead a[href="#tts-{k}"]{{background:#333;color:#fff}}'
              for k in range(1, 10))
)


def badge(verdict: str) -> str:
    """A small coloured label naming the verdict."""
    # <b>, not <i>: the sortable grids hide their <i> anchors.
    return (f'<b class="vb" style="background:{VERDICT_COLOURS[verdict]}" '
            f'title="trust verdict: {escape(verdict)}">{escape(_SHORT[verdict])}</b>')


def verdict_of(trust: Trust | None, model: str, condition: str) -> str | None:
    """The verdict of one model x condition, None when the panel has no such row."""
    if trust is None or model not in trust.models or condition not in trust.conditions:
        return None
    mi, ci = trust.models.index(model), trust.conditions.index(condition)
    return str(trust.verdict[mi, ci]) if trust.present[mi, ci] else None


def _fields(trust: Trust) -> list[str]:
    return [*FIELDS, *(RETEST_FIELDS if trust.repeated else ())]


def _cell(row: dict[str, object], name: str) -> str:
    v = row.get(name)
    text = fmt(v if isinstance(v, float) else None, sign=name == "order_bias")
    lo, hi = row.get(f"{name}_ci_low"), row.get(f"{name}_ci_high")
    if isinstance(lo, float) and isinstance(hi, float):
        text += f" [{fmt(lo, sign=False)}, {fmt(hi, sign=False)}]"
    return text


def trust_header(trust: Trust) -> list[str]:
    return ["model", "verdict", *(_HEAD[f] for f in _fields(trust))]


def trust_rows(trust: Trust) -> list[list[str]]:
    """The panel's rows as text cells (report.md's table; the HTML table's cells)."""
    out = []
    for m, c in trust.rows():
        row = trust.get(m, c)
        name = m if c == VANILLA else f"{m} [{c}]"
        out.append([name, str(row["verdict"]), *(_cell(row, f) for f in _fields(trust))])
    return out


def _ranks(trust: Trust) -> list[list[int]]:
    """Per sort column (name, verdict, each field) every row's rank; undefined values last."""
    pairs = trust.rows()
    idx = [(trust.models.index(m), trust.conditions.index(c)) for m, c in pairs]
    keys: list[np.ndarray] = [np.arange(len(pairs), dtype=np.float64),
                              np.array([VERDICTS.index(str(trust.verdict[i])) for i in idx],
                                       dtype=np.float64)]
    for f in _fields(trust):
        v = np.array([trust.values[f][i] for i in idx], dtype=np.float64)
        # Most doubtful first: low correlations, high straightlining, large |bias|.
        key = np.abs(v) if f == "order_bias" else v
        keys.append(np.where(np.isnan(key), np.inf,
                             -key if f in ("order_bias", "straightlining") else key))
    ranks = []
    for key in keys:
        r = np.empty(len(pairs), np.int64)
        r[np.argsort(key, kind="stable")] = np.arange(len(pairs))
        ranks.append(r.tolist())
    return ranks


def trust_table(trust: Trust) -> str:
    """The panel as a grid sortable by any column (a heading links to `#tts-<k>`)."""
    header, rows = trust_header(trust), trust_rows(trust)
    if not rows:
        return "<p>No model x condition was run.</p>"
    ranks = _ranks(trust)
    n = len(header)
    out = [f'<div class="tt" style="--n:{n - 2}">']
    out += [f'<i id="tts-{k}"></i>' for k in range(1, n)]
    tips = ["", FIELD_DOCS["verdict"], *(FIELD_DOCS[f] for f in _fields(trust))]
    out.append('<div class="tthead">' + "".join(
        f'<a href="#tts-{k}" title="{escape(tips[k] or "original order")}">{escape(h)}</a>'
        if k else f'<a href="#tts-0" title="original order">{escape(h)}</a>'
        for k, h in enumerate(header)) + "</div>")
    out.append('<div class="ttrows">')
    for i, row in enumerate(rows):
        style = ";".join(f"--t{k}:{ranks[k][i]}" for k in range(n))
        cells = [f'<span title="{escape(row[0])}">{escape(row[0])}</span>',
                 f"<span>{badge(row[1])}</span>", *(f"<span>{escape(x)}</span>"
                                                    for x in row[2:])]
        out.append(f'<div class="ttrow" style="{style}">{"".join(cells)}</div>')
    out.append("</div></div>")
    return "".join(out)


def trust_scatter(trust: Trust, width: int = 460) -> str:
    """order_profile_rho (x) against wording_profile_rho (y), both -1..1, with the verdict's
    threshold lines; each point is coloured by its verdict and names its model on hover."""
    pad, size = 50, width - 70
    y0 = 20

    def sx(v: float) -> float:
        return pad + (max(-1.0, min(1.0, v)) + 1) / 2 * size

    def sy(v: float) -> float:
        return y0 + (1 - (max(-1.0, min(1.0, v)) + 1) / 2) * size

    title = "order profile rho against wording profile rho"
    out = [f'<svg class="chart" width="{width}" height="{size + 70}" viewBox="0 0 {width} '
           f'{size + 70}" role="img" aria-label="{title}"><title>{title}</title>'
           '<rect width="100%" height="100%" fill="#ffffff"/>',
           f'<rect x="{pad}" y="{y0}" width="{size}" height="{size}" fill="none" '
           'stroke="#999"/>']
    for t, dash in ((trust.weak_min, "4 3"), (trust.replicate_min, "")):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<line x1="{sx(t):.1f}" y1="{y0}" x2="{sx(t):.1f}" y2="{y0 + size}" '
                   f'stroke="#555"{d}/><line x1="{pad}" y1="{sy(t):.1f}" x2="{pad + size}" '
                   f'y2="{sy(t):.1f}" stroke="#555"{d}/>')
    for v in (-1.0, 0.0, 1.0):
        out.append(f'<text x="{sx(v):.1f}" y="{y0 + size + 14}" font-size="10" '
                   f'text-anchor="middle" fill="#555">{v:+.0f}</text>'
                   f'<text x="{pad - 6}" y="{sy(v) + 3:.1f}" font-size="10" text-anchor="end" '
                   f'fill="#555">{v:+.0f}</text>')
    out.append(f'<text x="{pad + size / 2:.0f}" y="{y0 + size + 32}" font-size="11" '
               'text-anchor="middle" fill="#333">order_profile_rho (v_k against v_k_reversed)'
               f'</text><text x="14" y="{y0 + size / 2:.0f}" font-size="11" '
               f'text-anchor="middle" fill="#333" transform="rotate(-90 14 {y0 + size / 2:.0f})">'
               "wording_profile_rho (v1, v2, v3)</text>")
    for m, c in trust.rows():
        row = trust.get(m, c)
        x, y = row["order_profile_rho"], row["wording_profile_rho"]
        if x is None or y is None:
            continue
        name = m if c == VANILLA else f"{m} [{c}]"
        out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4.5" fill-opacity=".8" '
                   f'fill="{VERDICT_COLOURS[row["verdict"]]}"><title>{escape(name)}: '
                   f"{x:+.2f}, {y:+.2f} ({escape(row['verdict'])})</title></circle>")
    return "".join(out) + "</svg>"
