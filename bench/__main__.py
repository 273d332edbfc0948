"""Run every benchmark module in turn; each prints its own figures and ratios.

`python -m bench grid` runs only the modules whose name contains one of the words given.
"""

from __future__ import annotations

import importlib
import sys
import time

# Each module exposes `main() -> None`, prints its figures, and names the goal it measures.
MODULES = ["bench.bench_scoring", "bench.bench_engine", "bench.bench_grid_scoring"]


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    chosen = [m for m in MODULES if not words or any(w in m for w in words)]
    if not chosen:
        print(f"no benchmark matches {' '.join(words)}; the modules are {', '.join(MODULES)}")
        return 2
    failed = 0
    for name in chosen:
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
