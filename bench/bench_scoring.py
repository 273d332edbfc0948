"""Scoring speed: import + score of the 33 recorded models, and scoring 1M synthetic answers.

Each figure is printed beside a baseline measured in the same run: a straightforward
per-answer dict/loop implementation of the same scoring, in the style of the authors' scripts
(json per record, a dict of answers per item, Python loops over correlations).
"""

from __future__ import annotations

import json
import lzma
import math
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from vpbatch.benchmark import layout
from vpbatch.benchmark.dataset import Dataset, load_dataset
from vpbatch.benchmark.dims import FAMILY_DIMS, VERSIONS
from vpbatch.log.importer import find_output_files, import_official
from vpbatch.scoring.cube import RatingCube, cube_from_log
from vpbatch.scoring.scorer import ScoreOptions, Scores, item_weights, score_cube

__all__ = ["main", "baseline_score", "synthetic_log", "scanner_vs_plain"]

IMPORT_GOAL_S = 20.0
SCANNER_KEEP_RATIO = 3.0  # the byte-level scanner earns its code only by this much less CPU
SCORE_GOAL_S = 2.0
N_SYNTHETIC = 1_000_000

T = TypeVar("T")


def _timed(fn: Callable[[], T]) -> tuple[T, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _cpu() -> float:
    """CPU seconds of this process (all its threads) and its reaped children: on a shared
    machine, the honest clock."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _lists(ds: Dataset, options: ScoreOptions) -> dict[tuple[int, int], dict[str, list[Any]]]:
    """Per item, the (dimension, sign) pairs that count: the per-record lists of the authors."""
    out: dict[tuple[int, int], dict[str, list[Any]]] = {}
    for family in FAMILY_DIMS:
        w = item_weights(ds, family, options)
        for i in range(len(ds.portrait_id)):
            key = (int(ds.portrait_id[i]), int(ds.option_id[i]))
            pairs = [(d, int(w[i, j])) for j, d in enumerate(FAMILY_DIMS[family]) if w[i, j]]
            out.setdefault(key, {})[family] = pairs
    return out


def baseline_score(
    answers: Iterable[tuple[str, str, int, int, float | None]],
    lists: dict[tuple[int, int], dict[str, list[Any]]],
) -> dict[tuple[str, str], dict[str, dict[str, float]]]:
    """(model, condition, pid, oid, rating) -> centred scores, one answer at a time."""
    per_item: dict[tuple[str, str], dict[tuple[int, int], list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for model, cond, pid, oid, rating in answers:
        if rating is not None:
            per_item[(model, cond)][(pid, oid)].append(rating)
    result = {}
    for key, items in per_item.items():
        fams: dict[str, dict[str, float]] = {}
        for family in FAMILY_DIMS:
            dims: dict[str, list[float]] = defaultdict(list)
            used: list[float] = []
            for item, ratings in items.items():
                mean = sum(ratings) / len(ratings)
                pairs = lists[item][family]
                for dim, sign in pairs:
                    dims[dim].append(mean if sign > 0 else 7 - mean)
                if pairs:
                    used.append(mean)
            centre = sum(used) / len(used) if used else math.nan
            fams[family] = {d: sum(v) / len(v) - centre for d, v in dims.items()}
        result[key] = fams
    return result


def _baseline_official(outputs: Path, lists: dict[tuple[int, int], dict[str, list[Any]]]) -> int:
    """The authors' pipeline in spirit: json-load every file, then score per answer."""

    def answers() -> Iterable[tuple[str, str, int, int, float | None]]:
        for path in find_output_files(outputs):
            model = path.name.split("_v")[0]
            opener = lzma.open if path.suffix == ".xz" else open
            with opener(path, "rt") as f:
                for row in json.load(f):
                    nr = row.get("numeric_response")
                    rating = float(nr) if nr not in (None, "") and "error" not in row else None
                    yield model, "vanilla", int(row["portrait_id"]), int(row["option_id"]), rating

    return len(baseline_score(answers(), lists))


def _check_same(ours: Scores, theirs: dict[tuple[str, str], dict[str, dict[str, float]]]) -> None:
    """The baseline must compute the same numbers, or the ratio means nothing."""
    for (model, cond), fams in list(theirs.items())[:50]:
        mi, ci = ours.models.index(model), ours.conditions.index(cond)
        for dim, value in fams["pvq"].items():
            j = FAMILY_DIMS["pvq"].index(dim)
            assert abs(ours.score["pvq"][mi, ci, j] - value) < 1e-9, (model, cond, dim)


def scanner_vs_plain(log: Path, ds: Dataset) -> str:
    """CPU seconds (every reading thread) of reading a log into the cube two ways: the
    byte-level scanner, and orjson per line feeding the same numpy fill. Same cube, or no ratio.
    """
    c0 = _cpu()
    scanned = cube_from_log(log, ds, cache=False)
    c_scan = _cpu() - c0
    c0 = _cpu()
    plain = cube_from_log(log, ds, cache=False, plain=True)
    c_plain = _cpu() - c0
    np.testing.assert_array_equal(scanned.ratings, plain.ratings)
    assert (scanned.n_ok, scanned.n_failed) == (plain.n_ok, plain.n_failed)
    return (f"scanner {c_scan:.2f} s CPU, orjson per line {c_plain:.2f} s CPU "
            f"({os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}): scanner "
            f"{c_plain / c_scan:.1f}x less CPU (kept if >= {SCANNER_KEEP_RATIO:.0f}x)")


def bench_official(data: Path, ds: Dataset) -> None:
    outputs = data / layout.OUTPUTS
    mb = sum(p.stat().st_size for p in find_output_files(outputs)) / 1e6
    lists = _lists(ds, ScoreOptions())
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        _, t_import = _timed(lambda: import_official(outputs, run))
        scores, t_score = _timed(
            lambda: score_cube(cube_from_log(run / "log.jsonl", ds, cache=False), ds)
        )
        mb_log = (run / "log.jsonl").stat().st_size / 1e6
        versus = scanner_vs_plain(run / "log.jsonl", ds)
    t_ours = t_import + t_score
    n, t_base = _timed(lambda: _baseline_official(outputs, lists))
    assert n == len(scores.models) == 33
    goal = "ok" if t_ours < IMPORT_GOAL_S else "MISSED"
    print(f"import + score, 33 recorded models ({mb:.0f} MB xz): {t_ours:.1f} s = import "
          f"{t_import:.1f} s (re-parses every answer, writes the log) + read and score "
          f"{t_score:.2f} s (goal < {IMPORT_GOAL_S:.0f} s: {goal}); per-answer baseline "
          f"(json.load + loops, no log): {t_base:.1f} s; ratio {t_base / t_ours:.2f}x")
    print(f"reading the imported log ({mb_log:.0f} MB) into the cube: {versus}")


def synthetic_log(path: Path, ds: Dataset, n_answers: int, seed: int = 0) -> tuple[int, int]:
    """A log of Record lines: models × conditions × 6 versions × items; returns (M, C)."""
    rng = np.random.default_rng(seed)
    per_cell = len(VERSIONS) * len(ds.portrait_id)
    cells = max(1, n_answers // per_cell)
    n_models = max(1, int(math.sqrt(cells / 3)))
    n_conds = max(1, cells // n_models)
    tail = (',"answer_mode":"text","strict_reason":null,"finish_reason":"stop",'
            '"error_kind":null,"error":null,'
            '"usage":{"prompt_tokens":412,"completion_tokens":4},"latency_ms":812.5,'
            '"attempts":1,"request":{"temperature":0.0,"seed":42,"max_tokens":64},'
            '"batch_id":null,"ts":1764200000.0,"extra":{}}\n')
    phrases = ["not like me at all", "not like me", "a little like me", "somewhat like me",
               "like me", "very much like me"]
    with open(path, "w") as f:
        for m in range(n_models):
            for c in range(n_conds):
                cond = "vanilla" if c == 0 else f"persona:group{c}=value"
                ratings = rng.integers(1, 7, size=per_cell)
                lines = []
                for k in range(per_cell):
                    v, i = divmod(k, len(ds.portrait_id))
                    r = int(ratings[k])
                    lines.append(
                        f'{{"job_id":"{m:04d}{c:04d}{k:08d}{seed:016d}","model":"model-{m}",'
                        f'"condition":"{cond}","version":"{VERSIONS[v]}",'
                        f'"portrait_id":{ds.portrait_id[i]},"option_id":{ds.option_id[i]},'
                        f'"repeat":0,"status":"ok","raw":"{phrases[r - 1]}","reasoning":null,'
                        f'"rating":{r},"rating_strict":{r}{tail}'
                    )
                f.write("".join(lines))
    return n_models, n_conds


def _baseline_log(path: Path, lists: dict[tuple[int, int], dict[str, list[Any]]]) -> Any:
    def answers() -> Iterable[tuple[str, str, int, int, float | None]]:
        seen: set[str] = set()
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                if row["status"] != "ok" or row["job_id"] in seen:
                    continue
                seen.add(row["job_id"])
                rating = row["rating"]
                yield (row["model"], row["condition"], row["portrait_id"], row["option_id"],
                       None if rating is None else float(rating))

    return baseline_score(answers(), lists)


def bench_synthetic(ds: Dataset) -> None:
    lists = _lists(ds, ScoreOptions())
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log.jsonl"
        n_models, n_conds = synthetic_log(log, ds, N_SYNTHETIC)
        n = n_models * n_conds * len(VERSIONS) * len(ds.portrait_id)
        mb = log.stat().st_size / 1e6
        c0 = _cpu()
        cube, t_read = _timed(lambda: cube_from_log(log, ds, cache=False))
        c_read = _cpu() - c0
        answers = _answers(cube)  # the same answers as plain tuples, for the baseline
        scores, t_score = _timed(lambda: score_cube(cube, ds))
        cube_from_log(log, ds)  # fills the cache
        _, t_cached = _timed(lambda: score_cube(cube_from_log(log, ds), ds))
        theirs, t_base = _timed(lambda: baseline_score(answers, lists))
        _, t_base_read = _timed(lambda: _baseline_log(log, lists))
        versus = scanner_vs_plain(log, ds)
    _check_same(scores, theirs)
    goal = "ok" if t_score < SCORE_GOAL_S else "MISSED"
    print(f"scoring alone, {n:,} synthetic answers in memory ({n_models} models x {n_conds} "
          f"conditions x 6 versions x 520 items): {t_score:.3f} s (goal < {SCORE_GOAL_S:.0f} s: "
          f"{goal}); per-answer dict/loop baseline {t_base:.1f} s; ratio {t_base / t_score:.0f}x")
    print(f"reading that log ({mb:.0f} MB, {n:,} lines) into the cube: {t_read:.1f} s wall, "
          f"{c_read:.1f} s CPU (load {os.getloadavg()[0]:.1f}); cached "
          f"cube + score {t_cached:.2f} s; json-per-line baseline (read + score) "
          f"{t_base_read:.1f} s; ratio {t_base_read / (t_read + t_score):.1f}x")
    print(f"  the same read, {mb:.0f} MB: {versus}")


def _answers(cube: RatingCube) -> list[tuple[str, str, int, int, float | None]]:
    m, c, _, i = np.nonzero(~np.isnan(cube.ratings))
    r = cube.ratings[~np.isnan(cube.ratings)]
    pid, oid = cube.portrait_id[i].tolist(), cube.option_id[i].tolist()
    return [(cube.models[a], cube.conditions[b], p, o, x)
            for a, b, p, o, x in zip(m.tolist(), c.tolist(), pid, oid, r.tolist(), strict=True)]


REPORT_GOAL_S = 5.0
REPORT_GOAL_MB = 5.0


def bench_report(ds: Dataset) -> None:
    """`vpbatch report` on the 33 recorded models, without and with the reference rows."""
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        import_official(Path(ds.root) / layout.OUTPUTS, run)
        cube_from_log(run / "log.jsonl", ds)  # as after `vpbatch score`: the cube cache is warm
        _report_times(run, ds)


def _report_times(run: Path, ds: Dataset) -> None:
    from vpbatch.report import write_report
    from vpbatch.scoring.reference import paper_reference

    old = os.environ.get("VPBATCH_CACHE")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["VPBATCH_CACHE"] = cache  # the reference computed here, never the user's
        try:
            (_, html), t_plain = _timed(lambda: write_report(run, data=Path(ds.root)))
            plain_mb = html.stat().st_size / 1e6
            _, t_first = _timed(lambda: paper_reference(ds))
            (_, html), t_ref = _timed(lambda: write_report(run, data=Path(ds.root),
                                                           reference="paper"))
        finally:
            if old is None:
                os.environ.pop("VPBATCH_CACHE", None)
            else:
                os.environ["VPBATCH_CACHE"] = old
    ref_mb = html.stat().st_size / 1e6
    ok = "ok" if max(t_plain, t_ref) < REPORT_GOAL_S and ref_mb < REPORT_GOAL_MB else "MISSED"
    print(f"report, 33 models, 1000 bootstrap resamples: {t_plain:.1f} s, report.html "
          f"{plain_mb:.2f} MB; with --reference paper (cached): {t_ref:.1f} s, {ref_mb:.2f} MB "
          f"(goal < {REPORT_GOAL_S:.0f} s and < {REPORT_GOAL_MB:.0f} MB: {ok}); computing the "
          f"reference the first time: {t_first:.1f} s")


def main() -> None:
    ds = load_dataset()
    bench_synthetic(ds)
    bench_official(Path(ds.root), ds)
    bench_report(ds)


if __name__ == "__main__":
    main()
