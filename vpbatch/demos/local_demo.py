"""`make run-local`: the benchmark answered by a real model on this machine.

Starts llama.cpp's OpenAI-compatible server with SmolLM2-135M-Instruct on 127.0.0.1, sweeps
it with configs/local-smollm2.toml through vpbatch's OpenAI-compatible provider, scores,
reports, prints the value profile and the sweep's runtime, request rate and parse failures,
then stops the server.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from vpbatch.demos.llama_server import REPO, serve_llama
from vpbatch.errors import VPBatchError
from vpbatch.log.runlog import LOG_NAME, read_log

CONFIG = REPO / "configs" / "local-smollm2.toml"
RUN_DIR = REPO / "runs" / "local-smollm2"
PORT = 18080  # fixed: the config's base_url names it, so a resumed run keeps its config hash


def vpbatch(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "vpbatch", *args], check=True)


def summarise(run_dir: Path, seconds: float, before: int) -> None:
    records = read_log(run_dir / LOG_NAME)
    sent = len(records) - before
    parsed = sum(r.rating is not None for r in records)
    strict = sum(r.rating_strict is not None for r in records)
    failed = sum(r.status != "ok" for r in records)
    n = max(len(records), 1)
    print(f"\nsweep: {sent} requests in {seconds:.1f} s ({sent / max(seconds, 1e-9):.2f} req/s)")
    print(f"answers: {len(records)}; parse failures (official): {n - parsed - failed} "
          f"({(n - parsed - failed) / n:.1%}); strict parse failures: {n - strict - failed} "
          f"({(n - strict - failed) / n:.1%}); request failures: {failed}")


def main() -> int:
    try:
        with serve_llama(PORT, log_dir=RUN_DIR) as url:
            print(f"llama.cpp server with SmolLM2-135M-Instruct at {url}", flush=True)
            log = RUN_DIR / LOG_NAME
            before = len(read_log(log)) if log.exists() else 0
            t0 = time.perf_counter()
            vpbatch("run", str(CONFIG), "--run-dir", str(RUN_DIR))
            seconds = time.perf_counter() - t0
        vpbatch("score", str(RUN_DIR))
        vpbatch("report", str(RUN_DIR))
        summarise(RUN_DIR, seconds, before)
        print(f"results: {RUN_DIR} (scores.json, report.html)")
    except VPBatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"error: {' '.join(map(str, exc.cmd))} exited {exc.returncode}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
