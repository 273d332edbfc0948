"""Grid analysis speed: 40 models x 36 conditions x 6 versions x 520 items (4.5M answers).

Writes a synthetic log in the real Record format (vanilla, the 25 personas and the 10
steering conditions of configs/personas.toml), then times reading it into a cube plus the
whole one-pass analysis (exact scores, 1000-resample item bootstrap, deltas, steering,
version spread, alpha). Goal: < 10 s. The baseline is a naive scorer (json.loads per line,
dicts of ratings, Python loops), timed on the first models' lines and extrapolated.
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

from vpbatch.analysis import analyse
from vpbatch.conditions import load_conditions
from vpbatch.cube import cube_from_log
from vpbatch.dataset import Dataset, load_dataset
from vpbatch.dims import FAMILY_DIMS, PHRASES, VERSIONS
from vpbatch.scorer import ScoreOptions, item_weights

__all__ = ["main", "write_grid_log", "naive_scores", "GOAL_S"]

GOAL_S = 10.0
N_MODELS = 40
N_BOOT = 1000
BASELINE_MODELS = 2  # the naive scorer runs on this many models' lines, then extrapolates

_PHRASE = {v: k for k, v in PHRASES.items()}
_OK_MID = (',"strict_reason":null,"finish_reason":"stop","error_kind":null,"error":null,'
           '"usage":{"prompt_tokens":412,"completion_tokens":4},"latency_ms":812.5,'
           '"attempts":1,"request":')
_FAILED_MID = (',"strict_reason":null,"finish_reason":null,"error_kind":"permanent",'
               '"error":"HTTP 400: content filter","usage":null,"latency_ms":90.0,'
               '"attempts":1,"request":')
_END = ',"batch_id":null,"ts":1764200000.0,"extra":{}}\n'
_LEAN_REQUEST = '{"temperature":0.0,"seed":42,"max_tokens":64}'


def _requests(ds: Dataset, full: bool) -> list[str]:
    """Per item, the logged request body: lean, or the whole body with the prompt text the way
    `vpbatch run` logs it (about 1.9 kB a line instead of 0.5 kB)."""
    if not full:
        return [_LEAN_REQUEST] * ds.n_items
    return [orjson.dumps({"model": "sim-model", "messages": [
        {"role": "user", "content": f"Scenario: {t}\n\nResponse: {o}"}],
        "temperature": 0.0, "seed": 42, "max_tokens": 64}).decode()
        for t, o in zip(ds.text, ds.output, strict=True)]


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the cube reader's workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def grid_conditions() -> list[str]:
    """vanilla + every persona + every steering value of the shipped conditions file."""
    conds = load_conditions()
    return (["vanilla"] + [f"persona:{p}" for p in conds.personas]
            + [f"steer:{d}" for d in conds.steering])


def write_grid_log(path: Path, ds: Dataset, n_models: int, conditions: list[str],
                   seed: int = 0, *, full_request: bool = False) -> int:
    """A log of Record lines, model-major; 0.5% permanent failures. Returns the line count."""
    rng = np.random.default_rng(seed)
    ok_tail = [_OK_MID + r + _END for r in _requests(ds, full_request)]
    failed_tail = [_FAILED_MID + r + _END for r in _requests(ds, full_request)]
    pids, oids = ds.portrait_id.tolist(), ds.option_id.tolist()
    n_items = len(pids)
    lines = 0
    with open(path, "w", encoding="utf-8") as f:
        for m in range(n_models):
            item_base = rng.normal(3.5, 1.0, n_items)
            for cond in conditions:
                shift = rng.normal(0, 0.4, n_items)
                noise = rng.normal(0, 0.7, (len(VERSIONS), n_items))
                ratings = np.clip(np.round(item_base + shift + noise), 1, 6).astype(int).tolist()
                failed = (rng.random((len(VERSIONS), n_items)) < 0.005).tolist()
                # Random 32-hex ids, like the sha256 prefixes the engine writes.
                ids = rng.bytes(16 * len(VERSIONS) * n_items).hex()
                out = []
                for v, version in enumerate(VERSIONS):
                    head = f'"model":"model-{m:02d}","condition":"{cond}","version":"{version}"'
                    for i in range(n_items):
                        k = 32 * (v * n_items + i)
                        jid = ids[k : k + 32]
                        common = (f'{{"job_id":"{jid}",{head},"portrait_id":{pids[i]},'
                                  f'"option_id":{oids[i]},"repeat":0')
                        if failed[v][i]:
                            out.append(common + ',"status":"failed","raw":null,"reasoning":null,'
                                       '"rating":null,"rating_strict":null' + failed_tail[i])
                        else:
                            r = ratings[v][i]
                            out.append(common + f',"status":"ok","raw":"{_PHRASE[r]}",'
                                       f'"reasoning":null,"rating":{r},"rating_strict":{r}'
                                       + ok_tail[i])
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


def main() -> None:
    ds = load_dataset()
    conditions = grid_conditions()
    with tempfile.TemporaryDirectory(prefix="vpbatch-bench-grid-") as tmp:
        log = Path(tmp) / "log.jsonl"
        t0 = time.perf_counter()
        n_lines = write_grid_log(log, ds, N_MODELS, conditions)
        t_write = time.perf_counter() - t0
        gb = log.stat().st_size / 1e9
        print(f"synthetic grid: {N_MODELS} models x {len(conditions)} conditions x "
              f"{len(VERSIONS)} versions x {ds.n_items} items = {n_lines:,} lines, {gb:.2f} GB "
              f"(written in {t_write:.0f} s, not timed)")
        t0, c0 = time.perf_counter(), _cpu()
        cube = cube_from_log(log, ds, cache=False)
        t_read, c_read = time.perf_counter() - t0, _cpu() - c0
        t0, c0 = time.perf_counter(), _cpu()
        a = analyse(cube, ds, n_boot=N_BOOT)
        t_analyse, c_analyse = time.perf_counter() - t0, _cpu() - c0
        total = t_read + t_analyse
        verdict = "ok" if total < GOAL_S else "MISSED"
        # CPU time beside wall time: on a shared machine the wall clock also measures others.
        print(f"cube_from_log {t_read:.2f} s + analyse (n_boot={N_BOOT}) {t_analyse:.2f} s = "
              f"{total:.2f} s wall (goal < {GOAL_S:.0f} s: {verdict}); CPU incl. worker "
              f"processes {c_read:.2f} + {c_analyse:.2f} s; {cube.n_ok:,} answers in the cube; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
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
        log.unlink()
        # The engine logs each request body whole (prompt included): the same grid is ~4x the
        # bytes. Measured on a slice and scaled, since 8 GB of temp file helps nobody.
        full = Path(tmp) / "full.jsonl"
        n_full = write_grid_log(full, ds, BASELINE_MODELS, conditions, full_request=True)
        t0, c0 = time.perf_counter(), _cpu()
        cube_from_log(full, ds, cache=False)
        scale = N_MODELS / BASELINE_MODELS
        t_full, c_full = (time.perf_counter() - t0) * scale, (_cpu() - c0) * scale
        print(f"with request bodies logged whole, as `vpbatch run` does "
              f"({full.stat().st_size / n_full:.0f} bytes a line): cube_from_log would take "
              f"~{t_full:.0f} s wall, {c_full:.0f} s CPU for the grid (x{scale:.0f} from "
              f"{BASELINE_MODELS} models)")
    worst = max(float(np.nanmax(np.abs(np.array(v) - a.scores.score["pvq"][
        a.models.index(k[0]), a.conditions.index(k[1])]))) for k, v in naive.items())
    assert worst < 1e-9, f"the baseline disagrees with the scorer by {worst}"
    print(f"naive baseline (json.loads per line + dict scorer, point scores only, no bootstrap): "
          f"{t_naive:.0f} s, extrapolated x{N_MODELS // BASELINE_MODELS} from its time on the "
          f"first {BASELINE_MODELS} models' {sample:,} lines (same scores to {worst:.0e}); "
          f"ratio {t_naive / total:.1f}x wall, {c_naive / (c_read + c_analyse):.1f}x CPU")


if __name__ == "__main__":
    main()
