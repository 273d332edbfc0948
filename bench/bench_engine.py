"""Engine throughput: jobs/s and CPU per job through the full path, beside the authors' way.

Full path = grid → limits → aiohttp → `vpbatch sim serve` (its own process) → parse → log line.
Baseline, measured in the same run against the same server: a pool of synchronous workers
sending one request at a time, as the authors' pipeline does (max(1, int(0.75 × cores))).
Goals: ≥ 1,000 jobs/s at 0 ms server latency; ≥ 100× the baseline at 200 ms.
"""

from __future__ import annotations

import http.client
import multiprocessing
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

__all__ = ["main", "Figure", "engine_run", "baseline_run"]

LATENCIES_MS = (0, 200)
ENGINE_MODELS = 2  # two models in one sweep, as a real sweep has several
CONCURRENCY = {0: 64, 200: 320}  # per model: at 200 ms, in-flight requests buy throughput
BASELINE_SECONDS = 6.0


@dataclass(slots=True)
class Figure:
    jobs: int
    seconds: float
    cpu_s: float

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms_per_job(self) -> float:
        return 1000.0 * self.cpu_s / self.jobs if self.jobs else float("nan")


def _config(url: str, concurrency: int, root: Path) -> Any:
    from vpbatch.config.schema import load_config

    text = ['[run]\nname = "bench"\n']
    for i in range(ENGINE_MODELS):
        text.append(f'[[models]]\nname = "bench-{i}"\nprovider = "openai"\nmodel = "sim"\n'
                    f'base_url = "{url}"\nconcurrency = {concurrency}\n')
    path = root / "bench.toml"
    path.write_text("\n".join(text))
    return load_config(path, check_env=False)


def engine_run(url: str, concurrency: int) -> Figure:
    """One whole sweep (2 models × 3,120 jobs) through `run_sweep`, in this process."""
    from vpbatch.benchmark.dataset import load_dataset
    from vpbatch.sweep.engine import run_sweep

    load_dataset()  # parsed once per process: data loading is not what is measured
    with tempfile.TemporaryDirectory() as tmp:
        cfg = _config(url, concurrency, Path(tmp))
        cpu0, t0 = time.process_time(), time.perf_counter()
        summary = run_sweep(cfg, Path(tmp) / "run", progress=False, handle_signals=False)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    done = sum(m.ok for m in summary.models.values())
    failed = sum(m.failed for m in summary.models.values())
    if failed or not summary.complete:
        raise RuntimeError(f"the bench sweep did not complete ({failed} failed)")
    return Figure(done, seconds, cpu)


def _bodies(n: int) -> list[bytes]:
    """The first n request bodies of the grid, exactly as the engine sends them."""
    from vpbatch.benchmark.conditions import load_conditions
    from vpbatch.benchmark.dataset import load_dataset
    from vpbatch.config.schema import ModelConfig
    from vpbatch.sweep.grid import iter_model_jobs

    with tempfile.TemporaryDirectory() as tmp:
        cfg = _config("http://127.0.0.1:1/v1", 1, Path(tmp))
    m: ModelConfig = cfg.models[0]
    out = []
    for job in iter_model_jobs(cfg, m, load_dataset(), load_conditions()):
        out.append(orjson.dumps(job.body))
        if len(out) == n:
            break
    return out


def _worker(args: tuple[str, list[bytes], float, str]) -> tuple[int, float]:
    """One synchronous worker: a keep-alive connection, one request at a time, until the
    deadline; parses and logs each answer as the engine does. Returns (jobs, CPU seconds)."""
    from vpbatch.benchmark.parser import parse_official

    url, bodies, deadline, log_path = args
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=120)
    path = u.path.rstrip("/") + "/chat/completions"
    cpu0, n = time.process_time(), 0
    with open(log_path, "ab") as log:
        for body in bodies:
            if time.time() >= deadline:
                break
            conn.request("POST", path, body, {"Content-Type": "application/json"})
            answer = orjson.loads(conn.getresponse().read())
            text = answer["choices"][0]["message"]["content"]
            log.write(orjson.dumps({"raw": text, "rating": parse_official(text)}) + b"\n")
            log.flush()
            n += 1
    conn.close()
    return n, time.process_time() - cpu0


def baseline_run(url: str, workers: int, seconds: float = BASELINE_SECONDS) -> Figure:
    """The authors' shape: a process pool of synchronous workers, for a fixed time."""
    bodies = _bodies(3120)
    shares = [bodies[i::workers] for i in range(workers)]
    with tempfile.TemporaryDirectory() as tmp, multiprocessing.Pool(workers) as pool:
        deadline = time.time() + seconds
        t0 = time.perf_counter()
        results = pool.map(
            _worker, [(url, s, deadline, f"{tmp}/w{i}.jsonl") for i, s in enumerate(shares)]
        )
        elapsed = time.perf_counter() - t0
    return Figure(sum(n for n, _ in results), elapsed, sum(c for _, c in results))


def main() -> None:
    from vpbatch.demos.demo import SimProcess

    cores = os.cpu_count() or 1
    workers = max(1, int(0.75 * cores))
    print(f"{cores} cores; baseline = {workers} synchronous worker(s), one request at a time")
    results: dict[int, tuple[Figure, Figure]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for ms in LATENCIES_MS:
            srv = SimProcess.start(["--latency-ms", str(ms)], Path(tmp) / f"port{ms}")
            try:
                base = baseline_run(srv.url, workers)
                eng = engine_run(srv.url, CONCURRENCY[ms])
            finally:
                srv.stop()
            results[ms] = (eng, base)
            print(f"server latency {ms:>3} ms: engine {eng.rate:8.1f} jobs/s "
                  f"({eng.jobs} jobs in {eng.seconds:.2f} s, {eng.cpu_ms_per_job:.3f} ms CPU/job, "
                  f"concurrency {CONCURRENCY[ms]}/model) | baseline {base.rate:7.1f} jobs/s "
                  f"({base.cpu_ms_per_job:.3f} ms CPU/job) | ratio {eng.rate / base.rate:6.1f}x")
    fast, slow = results[0][0], results[200]
    ok0 = fast.rate >= 1000.0
    ok200 = slow[0].rate >= 100.0 * slow[1].rate
    print(f"goal >= 1,000 jobs/s at 0 ms: {fast.rate:.0f} jobs/s -> {'met' if ok0 else 'MISSED'}")
    print(f"goal >= 100x baseline at 200 ms: {slow[0].rate / slow[1].rate:.0f}x -> "
          f"{'met' if ok200 else 'MISSED'}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
