"""Grid analysis speed: 40 models x 36 conditions x 6 versions x 520 items (4.5M answers).

Writes a synthetic log of real Record.to_json lines (vanilla, the 25 personas and the 10
steering conditions of configs/personas.toml; answer text, usage, the request parameters with
the messages as a sha256 digest: ~620 bytes a line, 2.8 GB), then times reading it into a cube
plus the whole one-pass analysis (exact scores, 1000-resample query-cluster bootstrap with its
design effect, deltas, steering, version spread, both alphas, and every model × condition's
percentile among the survey's 560 raters). Goal: < 10 s; CPU time is printed beside wall
time, since a shared machine stretches the wall clock; the trust panel's share of the analysis
is timed on its own. Set VPBATCH_BENCH_GRID_LOG to a path to keep the log there and reuse it
on the next run (it takes minutes and 2.9 GB to write). The baseline is a naive scorer
(json.loads per line, dicts of ratings, Python loops), timed on the first models' lines and
extrapolated.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import orjson

from bench.bench_scoring import scanner_vs_plain
from vpbatch.benchmark.conditions import load_conditions
from vpbatch.benchmark.dataset import Dataset, load_dataset
from vpbatch.benchmark.dims import FAMILY_DIMS, PHRASES, VERSIONS
from vpbatch.benchmark.survey import load_survey
from vpbatch.log.records import Record
from vpbatch.scoring.analysis import analyse
from vpbatch.scoring.cube import cube_from_log
from vpbatch.scoring.cubecache import cache_path
from vpbatch.scoring.kernel import build_kernel
from vpbatch.scoring.percentile import human_percentiles
from vpbatch.scoring.scorer import ScoreOptions, item_weights, scoring_means
from vpbatch.scoring.trust import trust_panel

__all__ = ["main", "write_grid_log", "naive_scores", "GOAL_S"]

GOAL_S = 10.0
N_MODELS = 40
N_BOOT = 1000
BASELINE_MODELS = 2  # the naive scorer runs on this many models' lines, then extrapolates

_PHRASE = {v: k for k, v in PHRASES.items()}
# How answers come back: the bare phrase, with a full stop, capitalised, in bold, quoted.
_STYLES = ("{}", "{}.", "{cap}", "{cap}.", "**{cap}**", '"{cap}"')
P_FAILED = 0.005  # permanent failures (HTTP 400) among the jobs


def _cpu() -> float:
    """CPU seconds of this process, all its threads (the cube reader's) included."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def grid_conditions() -> list[str]:
    """vanilla + every persona + every steering value of the shipped conditions file."""
    conds = load_conditions()
    return (["vanilla"] + [f"persona:{p}" for p in conds.personas]
            + [f"steer:{d}" for d in conds.steering])


def _answers() -> list[list[str]]:
    """Per rating 1..6, the answer texts as JSON string bodies (quotes escaped)."""
    return [[orjson.dumps(s.format(_PHRASE[r], cap=_PHRASE[r].capitalize())).decode()[1:-1]
             for s in _STYLES] for r in range(1, 7)]


def _block(rng: np.random.Generator, head: str, pids: list[int], oids: list[int],
           ratings: list[int], model: str) -> list[str]:
    """One (model, condition, version)'s lines, each exactly what Record.to_json writes."""
    n = len(pids)
    ids = rng.bytes(16 * n).hex()
    shas = rng.bytes(32 * n).hex()
    failed = (rng.random(n) < P_FAILED).tolist()
    style = rng.integers(0, len(_STYLES), n).tolist()
    prompt = rng.integers(380, 460, n).tolist()
    done = rng.integers(3, 7, n).tolist()
    latency = np.round(rng.gamma(4.0, 180.0, n), 2).tolist()
    ts = (1764200000.0 + np.cumsum(rng.exponential(0.004, n))).tolist()
    answers = _answers()
    out = []
    for i in range(n):
        common = (f'{{"job_id":"{ids[32 * i : 32 * i + 32]}",{head},"portrait_id":{pids[i]},'
                  f'"option_id":{oids[i]},"repeat":0,')
        sha = shas[64 * i : 64 * i + 64]
        request = (f'"request":{{"model":"{model}","messages_sha256":"{sha}","temperature":0.0,'
                   f'"seed":42,"max_tokens":64}},"batch_id":null,"ts":{ts[i]!r},')
        if failed[i]:
            out.append(common + '"status":"failed","raw":null,"reasoning":null,"rating":null,'
                       '"rating_strict":null,"answer_mode":"text","strict_reason":null,'
                       '"finish_reason":null,"unrated":null,'
                       '"error_kind":"permanent","error":"HTTP 400: the prompt was flagged by '
                       'the content filter","usage":null,"latency_ms":null,"attempts":1,'
                       + request + '"extra":{"http_status":400}}\n')
            continue
        r = ratings[i]
        out.append(common + f'"status":"ok","raw":"{answers[r - 1][style[i]]}",'
                   f'"reasoning":null,"rating":{r},"rating_strict":{r},"answer_mode":"text",'
                   '"strict_reason":null,'
                   '"finish_reason":"stop","unrated":null,"error_kind":null,"error":null,"usage":'
                   f'{{"prompt_tokens":{prompt[i]},"completion_tokens":{done[i]}}},'
                   f'"latency_ms":{latency[i]!r},"attempts":1,' + request + '"extra":{}}\n')
    return out


def write_grid_log(path: Path, ds: Dataset, n_models: int, conditions: list[str],
                   seed: int = 0) -> int:
    """A log of Record lines, model-major; P_FAILED permanent failures. Returns the line count.

    Lines are what the engine writes: raw answer text, usage, the request parameters with the
    messages as a sha256 digest. A sample of each block is checked against Record.to_json.
    """
    rng = np.random.default_rng(seed)
    pids, oids = ds.portrait_id.tolist(), ds.option_id.tolist()
    n_items = len(pids)
    lines = 0
    with open(path, "w", encoding="utf-8") as f:
        for m in range(n_models):
            model = f"model-{m:02d}"
            item_base = rng.normal(3.5, 1.0, n_items)
            for cond in conditions:
                shift = rng.normal(0, 0.4, n_items)
                noise = rng.normal(0, 0.7, (len(VERSIONS), n_items))
                ratings = np.clip(np.round(item_base + shift + noise), 1, 6).astype(int).tolist()
                out = []
                for v, version in enumerate(VERSIONS):
                    head = f'"model":"{model}","condition":"{cond}","version":"{version}"'
                    out += _block(rng, head, pids, oids, ratings[v], model)
                for line in out[:: len(out) // 3]:
                    record = Record.from_dict(orjson.loads(line))
                    assert record.to_json().decode() == line, line  # the real format, byte for byte
                f.write("".join(out))
                lines += len(out)
    return lines


def naive_scores(path: Path, ds: Dataset, max_lines: int) -> dict[tuple[str, str], list[float]]:
    """The baseline: json.loads per line, dicts of ratings, loops per item and dimension."""
    w = np.asarray(item_weights(ds, "pvq", ScoreOptions())).tolist()
    keys = list(zip(ds.portrait_id.tolist(), ds.option_id.tolist(), strict=True))
    ratings: dict[tuple[str, str], dict[tuple[int, int], list[int]]] = defaultdict(
        lambda: defaultdict(list))
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f):
            if n >= max_lines:
                break
            row = json.loads(line)
            if row["status"] == "ok" and row["rating"] is not None:
                ratings[(row["model"], row["condition"])][
                    (row["portrait_id"], row["option_id"])].append(row["rating"])
    out = {}
    for key, per_item in ratings.items():
        means = {k: sum(v) / len(v) for k, v in per_item.items()}
        dims: list[list[float]] = [[] for _ in FAMILY_DIMS["pvq"]]
        used = []
        for i, item in enumerate(keys):
            if item not in means:
                continue
            hit = False
            for d, wd in enumerate(w[i]):
                if wd > 0:
                    dims[d].append(means[item])
                    hit = True
            if hit:
                used.append(means[item])
        centre = sum(used) / len(used)
        out[key] = [sum(v) / len(v) - centre if v else math.nan for v in dims]
    return out


def _grid_log(log: Path, ds: Dataset, conditions: list[str]) -> int:
    """Write the log (or reuse a kept one) and say so; returns its line count."""
    t0 = time.perf_counter()
    if log.exists():
        cache_path(log, False).unlink(missing_ok=True)  # the cached re-run must fill it anew
        with open(log, "rb") as f:
            n_lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 24), b""))
        how = f"reused from {log}"
    else:
        n_lines = write_grid_log(log, ds, N_MODELS, conditions)
        how = f"written in {time.perf_counter() - t0:.0f} s, not timed"
    gb = log.stat().st_size / 1e9
    print(f"synthetic grid: {N_MODELS} models x {len(conditions)} conditions x "
          f"{len(VERSIONS)} versions x {ds.n_items} items = {n_lines:,} lines, {gb:.2f} GB, "
          f"{gb * 1e9 / n_lines:.0f} bytes a line ({how})")
    return n_lines


def main() -> None:
    ds = load_dataset()
    conditions = grid_conditions()
    kept = os.environ.get("VPBATCH_BENCH_GRID_LOG")
    with tempfile.TemporaryDirectory(prefix="vpbatch-bench-grid-") as tmp:
        log = Path(kept) if kept else Path(tmp) / "log.jsonl"
        n_lines = _grid_log(log, ds, conditions)
        t0, c0 = time.perf_counter(), _cpu()
        cube = cube_from_log(log, ds, cache=False)
        t_read, c_read = time.perf_counter() - t0, _cpu() - c0
        t0, c0 = time.perf_counter(), _cpu()
        a = analyse(cube, ds, n_boot=N_BOOT)
        t_analyse, c_analyse = time.perf_counter() - t0, _cpu() - c0
        total = t_read + t_analyse
        verdict = "ok" if total < GOAL_S else "MISSED"
        t0 = time.perf_counter()
        k = build_kernel(ds, ScoreOptions())
        x = scoring_means(cube, ScoreOptions())
        pct = human_percentiles(x.reshape(-1, x.shape[-1]), load_survey(ds), k)
        t_pct = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), _cpu()
        trust_panel(cube, ds, ScoreOptions(), n_boot=N_BOOT)
        t_trust, c_trust = time.perf_counter() - t0, _cpu() - c0
        # CPU time beside wall time: on a shared machine the wall clock also measures others.
        print(f"cube_from_log {t_read:.2f} s + analyse (n_boot={N_BOOT}) {t_analyse:.2f} s = "
              f"{total:.2f} s wall (goal < {GOAL_S:.0f} s: {verdict}); CPU "
              f"{c_read:.2f} + {c_analyse:.2f} s; {cube.n_ok:,} answers in the cube; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"  of which the human percentiles ({pct.shape[0]:,} model x condition rows x "
              f"{pct.shape[1]} dimensions among 560 raters): {t_pct:.2f} s; bootstrap "
              f"{a.bootstrap}, design effect (median) "
              + ", ".join(f"{f} {np.nanmedian(v):.2f}" for f, v in a.design_effect.items()))
        print(f"  of which the trust panel (profile rhos and their {N_BOOT}-resample intervals, "
              f"timed again on its own): {t_trust:.2f} s wall, {c_trust:.2f} s CPU "
              f"({100 * c_trust / c_analyse:.0f}% of analyse's CPU)")
        print(f"reading it into the cube: {scanner_vs_plain(log, ds)}")
        cube_from_log(log, ds)  # fills the cube cache beside the log
        t0 = time.perf_counter()
        analyse(cube_from_log(log, ds), ds, n_boot=N_BOOT)
        print(f"re-run with the cube cached (a second `vpbatch report`): "
              f"{time.perf_counter() - t0:.2f} s")
        sample = n_lines * BASELINE_MODELS // N_MODELS
        t0, c0 = time.perf_counter(), _cpu()
        naive = naive_scores(log, ds, sample)
        t_naive = (time.perf_counter() - t0) * N_MODELS / BASELINE_MODELS
        c_naive = (_cpu() - c0) * N_MODELS / BASELINE_MODELS
        if not kept:
            log.unlink()
    worst = max(float(np.nanmax(np.abs(np.array(v) - a.scores.score["pvq"][
        a.models.index(k[0]), a.conditions.index(k[1])]))) for k, v in naive.items())
    assert worst < 1e-9, f"the baseline disagrees with the scorer by {worst}"
    print(f"naive baseline (json.loads per line + dict scorer, point scores only, no bootstrap): "
          f"{t_naive:.0f} s, extrapolated x{N_MODELS // BASELINE_MODELS} from its time on the "
          f"first {BASELINE_MODELS} models' {sample:,} lines (same scores to {worst:.0e}); "
          f"ratio {t_naive / total:.1f}x wall, {c_naive / (c_read + c_analyse):.1f}x CPU")


if __name__ == "__main__":
    main()
