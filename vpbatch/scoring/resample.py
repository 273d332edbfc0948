"""The bootstrap's building blocks: resample counts, resampled scores, their percentiles.

Shared by the analysis pass and the trust panel, so both resample the same queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from vpbatch.benchmark.dataset import Dataset
from vpbatch.scoring.kernel import Kernel, centre

__all__ = ["draw_counts", "query_clusters", "boot_rows", "boot_sums", "nan_percentile"]

F64 = npt.NDArray[np.float64]


def draw_counts(
    n_items: int, n_boot: int, seed: int, clusters: npt.NDArray[np.intp] | None = None
) -> npt.NDArray[np.float32]:
    """(I, B) how often each item appears in each resample, from one vectorised draw.

    With `clusters` (each item's cluster index) whole clusters are drawn with replacement and
    every item of a drawn cluster comes with it: the 5 responses of a query share a scenario.
    """
    rng = np.random.default_rng(seed)
    n_units = n_items if clusters is None else int(clusters.max()) + 1
    idx = rng.integers(0, n_units, size=(n_boot, n_units))
    idx += np.arange(n_boot)[:, None] * n_units
    counts = np.bincount(idx.ravel(), minlength=n_boot * n_units).reshape(n_boot, n_units)
    if clusters is not None:
        counts = counts[:, clusters]
    return np.ascontiguousarray(counts.T, dtype=np.float32)


def query_clusters(ds: Dataset) -> npt.NDArray[np.intp]:
    """(I,) each item's query: the resampling unit of the cluster bootstrap."""
    return np.unique(np.asarray(ds.portrait_id), return_inverse=True)[1].astype(np.intp)


def boot_rows(x: F64, counts: npt.NDArray[np.float32], k: Kernel) -> npt.NDArray[Any]:
    """(N, I) item means -> (N, sum D, B) centred scores of every resample."""
    return centre(*boot_sums(x, counts, k), k, axis=1)


def boot_sums(x: F64, counts: npt.NDArray[np.float32], k: Kernel
              ) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """(N, I) item means -> the (N, G, B) numerators and denominators of every resample.

    float32 products; exact while the means are halves and the sums stay below 2**24.
    """
    n_rows, n_items = x.shape
    g, n_boot = k.signed.shape[1], counts.shape[1]
    present = ~np.isnan(x)
    x0 = np.nan_to_num(x).astype(np.float32)
    # Y[n, g, i]: item i's share of row n's column g; one GEMM then sums every resample.
    y = x0[:, None, :] * k.signed.T[None, :, :]
    if k.neg7 is not None:
        y += present[:, None, :] * k.neg7.T[None, :, :]
    num = (y.reshape(n_rows * g, n_items) @ counts).reshape(n_rows, g, n_boot)
    # Rows usually share one missingness pattern (none missing): count denominators once each.
    packed = np.packbits(present, axis=1)
    _, first, which = np.unique(packed, axis=0, return_index=True, return_inverse=True)
    z = present[first][:, None, :] * k.weight.T[None, :, :]
    den = (z.reshape(-1, n_items) @ counts).reshape(len(first), g, n_boot)
    den = den if len(first) == 1 else den[which.ravel()]
    return num, den


def nan_percentile(draws: npt.NDArray[np.floating], q: Sequence[float]) -> list[F64]:
    """Linear-interpolated percentiles along the last axis, ignoring NaN (fast nanpercentile)."""
    srt = np.sort(draws, axis=-1)  # NaN sorts last
    n = (~np.isnan(srt)).sum(axis=-1)
    top = np.maximum(n - 1, 0)
    out = []
    for p in q:
        pos = (p / 100.0) * top
        lo = np.floor(pos).astype(np.intp)
        hi = np.minimum(lo + 1, top)
        a = np.take_along_axis(srt, lo[..., None], axis=-1)[..., 0].astype(np.float64)
        b = np.take_along_axis(srt, hi[..., None], axis=-1)[..., 0].astype(np.float64)
        out.append(np.where(n > 0, a + (b - a) * (pos - lo), np.nan))
    return out
