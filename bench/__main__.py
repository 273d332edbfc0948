"""Run every benchmark module in turn; each prints its own figures and ratios."""

from __future__ import annotations

import importlib
import sys
import time

# Each module exposes `main() -> None`, prints its figures, and names the goal it measures.
MODULES = ["bench.bench_scoring", "bench.bench_engine", "bench.bench_grid_scoring"]


def main() -> int:
    failed = 0
    for name in MODULES:
        print(f"\n=== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            print(f"skipped: {exc}")
            continue
        try:
            module.main()
        except Exception as exc:  # a broken bench must not hide the others' figures
            failed += 1
            print(f"FAILED: {type(exc).__name__}: {exc}")
        print(f"({time.perf_counter() - t0:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
