"""The report's first picture: every model x the 10 values as one heatmap.

Rows are ordered so that similar profiles sit together (average-linkage clustering of the
centred profiles by correlation, leaves in optimal order); a click on a value's heading
re-sorts the rows by that value, highest first. The sort is CSS only (the heading links to
`#ovs-<k>`, and `:target` picks which rank the rows' flex `order` follows), so the page stays
script-free and a sorted view has its own address (report.html#ovs-5: by Power). Reference
rows (the paper's recorded models) are greyed and take part in the ordering, so a new model
is seen among the models it resembles.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import numpy as np
import numpy.typing as npt

from vpbatch.benchmark.dims import PVQ
from vpbatch.report.common import fmt
from vpbatch.report.svg import label, nice_limit

__all__ = ["Row", "similarity_order", "cell_colour", "overview", "OVERVIEW_CSS"]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    values: F64  # (10,) centred PVQ scores, NaN where not scored
    reference: bool = False
    badge: str = ""  # HTML after the name: the trust verdict's badge


def similarity_order(profiles: F64) -> list[int]:
    """Row indices with similar profiles adjacent; rows without a full profile go last."""
    from scipy.cluster.hierarchy import linkage, optimal_leaf_ordering
    from scipy.spatial.distance import pdist

    ok = [i for i in range(len(profiles)) if np.isfinite(profiles[i]).all()
          and np.ptp(profiles[i]) > 0]  # a flat profile has no correlation with anything
    rest = [i for i in range(len(profiles)) if i not in ok]
    if len(ok) < 3:
        return ok + rest
    x = profiles[ok]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        dist = pdist(x, metric="correlation")
    tree = optimal_leaf_ordering(linkage(dist, method="average"), dist)
    from scipy.cluster.hierarchy import leaves_list

    return [ok[i] for i in leaves_list(tree)] + rest


def cell_colour(v: float, lim: float) -> str:
    """A diverging colour: blue below 0, white at 0, red above (the same as the heatmaps)."""
    if not np.isfinite(v):
        return "#f4f4f4"
    t = max(-1.0, min(1.0, v / lim))
    if t >= 0:  # white -> #b2182b
        r, g, b = 255 + t * (178 - 255), 255 + t * (24 - 255), 255 + t * (43 - 255)
    else:  # white -> #2166ac
        r, g, b = 255 - t * (33 - 255), 255 - t * (102 - 255), 255 - t * (172 - 255)
    return f"#{int(r):02x}{int(g):02x}{int(b):02x}"


# One hidden anchor per ordering; each row carries its rank under every ordering as a custom
# property, and the targeted anchor picks which one the rows' flex `order` follows.
_KEYS = ("sim", *range(len(PVQ)))

OVERVIEW_CSS = (
    ".ov i{display:none}.ovrows{display:flex;flex-direction:column}"
    ".ovrow,.ovhead{display:grid;grid-template-columns:minmax(180px,300px) repeat(10,96px);"
    "font-size:12px}.ovrow{order:var(--sim)}.ovrow span,.ovhead a{padding:3px 5px;"
    "border-bottom:1px solid #fff;border-right:1px solid #fff;text-align:right;"
    "white-space:nowrap;overflow:hidden;text-overflow:ellipsis}"
    ".ovrow span:first-child,.ovhead a:first-child{text-align:left}"
    ".ovhead a{background:#f0f0f0;font-weight:bold;text-align:center;color:#1a4d80;"
    "text-decoration:none}.ovhead a:hover{background:#dde6ef}"
    ".ov:not(:has(i:target)) .ovhead a:first-child{background:#333;color:#fff}"
    ".ovrow.ref span{opacity:.45}"
    ".ovrow.ref span:first-child{color:#666;font-style:italic;opacity:1}"
    ".ovrow:not(.ref) span:first-child{font-weight:bold}"
    + "".join(f"#ovs-{k}:target~.ovrows .ovrow{{order:var(--o{k})}}"
              f'#ovs-{k}:target~.ovhead a[href="#ovs-{k}"]{{background:#333;color:#fff}}'
              for k in _KEYS)
    .replace("var(--osim)", "var(--sim)")
)


def overview(rows: Sequence[Row]) -> str:
    """The heatmap as HTML (CSS in OVERVIEW_CSS); rows in similarity order, sortable."""
    if not rows:
        return "<p>No model has a vanilla profile yet.</p>"
    x = np.array([r.values for r in rows], dtype=np.float64)
    # The 95th percentile, not the maximum: one extreme profile (a simulated respondent) must
    # not wash out every other row; cells beyond the limit are simply full colour.
    finite = np.abs(x[np.isfinite(x)])
    lim = nice_limit(np.percentile(finite, 95) if finite.size else 0.0)
    ranks: dict[str, list[int]] = {"sim": [0] * len(rows)}
    for pos, i in enumerate(similarity_order(x)):
        ranks["sim"][i] = pos
    for k in range(len(PVQ)):
        col = np.where(np.isfinite(x[:, k]), -x[:, k], np.inf)  # highest first, NaN last
        ranks[str(k)] = [0] * len(rows)
        for pos, i in enumerate(np.argsort(col, kind="stable")):
            ranks[str(k)][int(i)] = pos
    out = ['<div class="ov">']
    out += [f'<i id="ovs-{k}"></i>' for k in _KEYS]
    out.append('<div class="ovhead"><a href="#ovs-sim" title="order rows by similarity of '
               'their profiles">model (by similarity)</a>')
    out += [f'<a href="#ovs-{k}" title="sort by {escape(label(d))}, highest first">'
            f"{escape(label(d))}</a>" for k, d in enumerate(PVQ)]
    out.append('</div><div class="ovrows">')
    for i, r in enumerate(rows):
        style = ";".join([f"--sim:{ranks['sim'][i]}"]
                         + [f"--o{k}:{ranks[str(k)][i]}" for k in range(len(PVQ))])
        name = r.name + (" (paper)" if r.reference else "")
        cells = "".join(f'<span style="background:{cell_colour(v, lim)}'
                        # white digits where the colour is dark enough to drown black ones
                        + (';color:#fff' if np.isfinite(v) and abs(v) > 0.6 * lim else "")
                        + f'">{fmt(float(v))}</span>' for v in r.values)
        out.append(f'<div class="ovrow{" ref" if r.reference else ""}" style="{style}">'
                   f'<span title="{escape(name)}">{escape(name)}{r.badge}</span>{cells}</div>')
    out.append("</div></div>")
    ref = any(r.reference for r in rows)
    out.append(f'<p class="meta">Colour: centred score from −{lim:.1f} (blue) to +{lim:.1f} '
               "(red), full colour beyond. Click a value to sort by it, highest first; the "
               "first heading restores the order by similarity."
               + (" Greyed italic rows are the paper's recorded models (their vanilla scores "
                  "from the authors' outputs), for reference." if ref else "") + "</p>")
    return "".join(out)
