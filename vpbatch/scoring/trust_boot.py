"""The trust panel's bootstrap intervals, vectorised over every resample of every profile.

A resample's profile correlation needs the ranks of ten scores. Two facts make that cheap:

- all scores of one profile are centred on the same family mean, so they rank as the
  dimension means do, and a centred rank is half the sum of sign(m_i - m_j) over the others:
  45 vectorised comparisons rank every profile of every resample at once;
- the cluster bootstrap draws a query's items together, so each sum is a sum over queries,
  and a dimension's column only over the queries it touches (resample.grouped_sums).

The correlations equal ranks.spearman's to the last bit (same centred ranks, the same
dot / sqrt(va * vb)); the rare profile with an undefined score goes through spearman itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from vpbatch.scoring.kernel import Kernel
from vpbatch.scoring.ranks import nanmean, spearman
from vpbatch.scoring.resample import Groups, boot_sums, group_items, grouped_sums, nan_percentile

__all__ = ["profile_intervals", "profile_pairs", "resampled_sums"]

F64 = npt.NDArray[np.float64]
_CHUNK_BYTES = 64 << 20  # resampled sums and means held at once
_TIE_DECIMALS = 9  # trust._profile_terms' rounding, for the profiles spearman ranks here


def profile_pairs(k: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The (order, wording) pairs of subset indices trust._profile_rows lays out for K pairs."""
    order = [(a, k + a) for a in range(k)]
    wording = [(2 * k + a, 2 * k + b) for a in range(k) for b in range(a + 1, k)]
    return order, wording


def resampled_sums(x: F64, counts: npt.NDArray[np.float32], kern: Kernel,
                   groups: Groups | None = None, out: npt.NDArray[np.float32] | None = None
                   ) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """(N, I) item means -> (G, N, B) numerators and denominators of every resample.

    By group when the means are halves (one rating, or the mean of two): every partial sum
    is then exact in float32, so regrouping gives boot_sums' numbers to the bit. Any other
    means (repeats averaged) take boot_sums itself.
    """
    twice = np.nan_to_num(x) * 2
    if np.array_equal(twice, np.round(twice)):
        return grouped_sums(x, groups or group_items(counts, kern), out)
    num, den = boot_sums(x, counts, kern)
    return np.moveaxis(num, 1, 0), np.moveaxis(den, 1, 0)


def _twice_centred_ranks(m: F64, out: npt.NDArray[np.int8]) -> npt.NDArray[np.int8]:
    """(D, R) scores -> (D, R) twice the centred rank of each among its row's D (ties averaged).

    2 * (rank_i - (D + 1) / 2) = sum over j of sign(m_i - m_j); a NaN compares as neither.
    """
    d = m.shape[0]
    out[...] = 0
    gt, lt = np.empty(m.shape[1:], bool), np.empty(m.shape[1:], bool)
    s = np.empty(m.shape[1:], np.int8)
    for i in range(d):
        for j in range(i + 1, d):
            np.greater(m[i], m[j], out=gt)
            np.less(m[i], m[j], out=lt)
            np.subtract(gt.view(np.int8), lt.view(np.int8), out=s)
            out[i] += s
            out[j] -= s
    return out


def _pair_rho(r2: npt.NDArray[np.int8], a: int, b: int) -> F64:
    """(D, cells, S, B) twice-centred ranks -> (cells, B) Spearman of subsets a and b."""
    ra, rb = r2[:, :, a].astype(np.int16), r2[:, :, b].astype(np.int16)
    dot = (ra * rb).sum(axis=0, dtype=np.int32).astype(np.float64)
    va = (ra * ra).sum(axis=0, dtype=np.int32).astype(np.float64)
    vb = (rb * rb).sum(axis=0, dtype=np.int32).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        # spearman's dot / sqrt(va * vb) on ranks a quarter of these: the same quotient.
        rho = dot / np.sqrt(va * vb)
    return np.asarray(np.where((va > 0) & (vb > 0), rho, np.nan), dtype=np.float64)


def _undefined_rows(rho: F64, m: F64, fam: F64, nan_rows: npt.NDArray[np.bool_],
                    a: int, b: int) -> None:
    """Redo, in place and by spearman itself, the rhos of resamples where a score is NaN."""
    bad = nan_rows[:, a] | nan_rows[:, b]  # (cells, B)
    if not bad.any():
        return
    cell, boot = np.nonzero(bad)
    side = [np.round(m[:, cell, s, boot].T - fam[cell, s, boot][:, None], _TIE_DECIMALS)
            for s in (a, b)]
    rho[cell, boot] = spearman(*side)


def _terms(m: F64, fam: F64, k: int, r2: npt.NDArray[np.int8]) -> tuple[F64, F64]:
    """(D, cells, S, B) dimension means -> (cells, B) order and wording terms per resample."""
    r2 = _twice_centred_ranks(m.reshape(m.shape[0], -1), r2.reshape(m.shape[0], -1)
                              ).reshape(m.shape)
    nan_rows = np.asarray(np.isnan(m).any(axis=0))  # (cells, S, B)
    out = []
    for pairs in profile_pairs(k):
        if not pairs:
            out.append(np.full((m.shape[1], m.shape[3]), np.nan))
            continue
        rhos = []
        for a, b in pairs:
            rho = _pair_rho(r2, a, b)
            _undefined_rows(rho, m, fam, nan_rows, a, b)
            rhos.append(rho)
        out.append(nanmean(np.stack(rhos, axis=-1), axis=-1))
    return out[0], out[1]


def profile_intervals(x: F64, kern: Kernel, k: int, counts: npt.NDArray[np.float32],
                      fields: tuple[str, str]) -> tuple[dict[str, F64], dict[str, F64]]:
    """(M, C, S, I) subset item means -> 95% intervals of the order and wording profile rhos,
    (M, C) each, from the resamples `counts`; chunked over models, buffers reused."""
    n_models, n_conds, n_sub, n_items = x.shape
    n_boot, n_cols = counts.shape[1], kern.signed.shape[1]
    d = len(kern.dim_cols)  # the PVQ cut: D value columns, then the family mean
    lo = {f: np.full((n_models, n_conds), np.nan) for f in fields}
    hi = {f: np.full((n_models, n_conds), np.nan) for f in fields}
    per_model = n_conds * n_sub * n_boot * (n_cols * 8 + d * 9)
    step = min(n_models, max(1, _CHUNK_BYTES // max(per_model, 1)))
    groups = group_items(counts, kern)
    rows = step * n_conds * n_sub
    sums = np.empty((2, n_cols, rows, n_boot), np.float32)
    means, r2 = np.empty((d, rows, n_boot)), np.empty((d, rows, n_boot), np.int8)
    fam = np.empty((rows, n_boot))
    for m0 in range(0, n_models, step):
        part = x[m0 : m0 + step]
        n = part.shape[0] * n_conds * n_sub
        num, den = resampled_sums(part.reshape(-1, n_items), counts, kern, groups, sums)
        with np.errstate(invalid="ignore", divide="ignore"):
            # float64 divisions of exact sums: equal means are equal, as trust's are.
            np.divide(num[:d], den[:d], out=means[:, :n], dtype=np.float64)
            np.divide(num[d], den[d], out=fam[:n], dtype=np.float64)
        shape = (len(part) * n_conds, n_sub, n_boot)
        terms = _terms(means[:, :n].reshape(d, *shape), fam[:n].reshape(shape), k,
                       r2[:, :n].reshape(d, *shape))
        for name, term in zip(fields, terms, strict=True):
            low, high = nan_percentile(term.reshape(len(part), n_conds, n_boot), (2.5, 97.5))
            lo[name][m0 : m0 + step], hi[name][m0 : m0 + step] = low, high
    return lo, hi
