"""`make run-local`: a value profile from a real model on this machine.

Starts llama.cpp's OpenAI-compatible server with SmolLM2-135M-Instruct on 127.0.0.1, sweeps it
in choice mode with configs/local-smollm2.toml (the paper's prompts, the answer constrained to
one of the six phrases) and a slice of the same prompts in the paper's free text with
configs/local-smollm2-text.toml, scores and reports; then prints the profile, both modes'
parse rates side by side, the request rate, the trust panel's verdict on the profile (from
scores.json) and the whole runtime, and stops the server.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson

from vpbatch.benchmark.dims import FAMILY_DIMS, PHRASES
from vpbatch.demos.llama_server import REPO, serve_llama
from vpbatch.errors import VPBatchError
from vpbatch.log.records import Record
from vpbatch.log.runlog import LOG_NAME, read_log

CONFIG = REPO / "configs" / "local-smollm2.toml"
TEXT_CONFIG = REPO / "configs" / "local-smollm2-text.toml"
RUN_DIR = REPO / "runs" / "local-smollm2"
TEXT_RUN_DIR = REPO / "runs" / "local-smollm2-text"
PORT = 18080  # fixed: the configs' base_url names it, so a resumed run keeps its config hash


def vpbatch(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "vpbatch", *args], check=True)


def sweep(config: Path, run_dir: Path) -> tuple[int, float]:
    """Run (or resume) one config; (requests sent now, seconds)."""
    log = run_dir / LOG_NAME
    before = len(read_log(log)) if log.exists() else 0
    t0 = time.perf_counter()
    vpbatch("run", str(config), "--run-dir", str(run_dir))
    return len(read_log(log)) - before, time.perf_counter() - t0


def _pct(n: int, d: int) -> str:
    return f"{n}/{d} ({n / max(d, 1):.1%})"


def _rate(sent: int, seconds: float) -> str:
    if not sent:
        return "nothing sent (all in the log)"
    return f"{sent} requests in {seconds:.0f} s ({sent / max(seconds, 1e-9):.2f} req/s)"


def parse_rates(choice: list[Record], text: list[Record]) -> list[str]:
    """Both modes' parse rates, overall and on the prompts the text slice asked."""
    def key(r: Record) -> tuple[str, int, int]:
        return r.version, r.portrait_id, r.option_id

    slice_keys = {key(r) for r in text}
    same = [r for r in choice if key(r) in slice_keys]
    failed = sum(r.status != "ok" for r in choice)
    reasons = Counter(r.strict_reason for r in choice if r.status == "ok" and r.rating is None)
    return [
        f"  choice mode: {_pct(sum(r.rating is not None for r in choice), len(choice))} "
        f"prompts rated; request failures {failed}; parse failures "
        f"{dict(reasons) or 'none'}",
        f"  text mode, {len(text)} of the same prompts: official parser "
        f"{_pct(sum(r.rating is not None for r in text), len(text))} rated, strict parser "
        f"{_pct(sum(r.rating_strict is not None for r in text), len(text))}",
        f"  choice mode on those {len(same)} prompts: "
        f"{_pct(sum(r.rating is not None for r in same), len(same))} rated",
    ]


def phrases_chosen(choice: list[Record]) -> str:
    picked = Counter(orjson.loads(r.raw or "{}").get("answer") for r in choice
                     if r.rating is not None)
    n = max(sum(picked.values()), 1)
    return ", ".join(f"{p} {picked[p] / n:.0%}" for p in PHRASES)


def completeness(run_dir: Path, model: str) -> str:
    """Whether every value of every family has a scored item (from scores.json)."""
    doc = orjson.loads((run_dir / "scores.json").read_bytes())["models"][model]["vanilla"]
    counts = {(f, d): doc[f][d]["n_items"] for f, dims in FAMILY_DIMS.items() for d in dims}
    missing = [d for (_, d), n in counts.items() if not n]
    if missing:
        return f"profile: {len(missing)} value(s) without a scored item: {', '.join(missing)}"
    (f, d), n = min(counts.items(), key=lambda kv: kv[1])
    return (f"profile: complete, all {len(counts)} values (10 PVQ, 4 higher-order, 5 Big Five) "
            f"have scored items (fewest: {d}, {n})")


def trust_verdict(run_dir: Path, model: str, condition: str = "vanilla") -> str:
    """The model's trust verdict and the fields behind it, from scores.json's panel."""
    row = orjson.loads((run_dir / "scores.json").read_bytes())["models"][model][condition]["trust"]

    def rho(name: str) -> str:
        v = row.get(name)
        if v is None:  # undefined, or its versions were not asked
            return "n/a"
        lo, hi = row.get(f"{name}_ci_low"), row.get(f"{name}_ci_high")
        return f"{v:+.2f}" + (f" [{lo:+.2f}, {hi:+.2f}]" if lo is not None and hi is not None
                              else "")

    bias, straight = row.get("order_bias"), row.get("straightlining")
    return (f"trust: {row['verdict']} (profile rho across answer order {rho('order_profile_rho')}"
            f", across wordings {rho('wording_profile_rho')}; order bias "
            f"{'n/a' if bias is None else f'{bias:+.2f}'}; straightlining "
            f"{'n/a' if straight is None else f'{straight:.0%}'}; rated "
            f"{row['rated_share']:.0%}; see docs/guides/trust.md)")


def main() -> int:
    t0 = time.perf_counter()
    try:
        with serve_llama(PORT, log_dir=RUN_DIR) as url:
            print(f"llama.cpp server with SmolLM2-135M-Instruct at {url}", flush=True)
            sent, seconds = sweep(CONFIG, RUN_DIR)
            text_sent, text_seconds = sweep(TEXT_CONFIG, TEXT_RUN_DIR)
        vpbatch("score", str(RUN_DIR))
        vpbatch("report", str(RUN_DIR))
        choice, text = read_log(RUN_DIR / LOG_NAME), read_log(TEXT_RUN_DIR / LOG_NAME)
        model = choice[0].model
        print(f"\nSmolLM2-135M on this machine, {model}:")
        print(f"  choice sweep: {_rate(sent, seconds)}")
        print(f"  text slice:   {_rate(text_sent, text_seconds)}")
        print("\n".join(parse_rates(choice, text)))
        print(f"  phrases chosen: {phrases_chosen(choice)}")
        print(completeness(RUN_DIR, model))
        print(trust_verdict(RUN_DIR, model))
        print(f"whole run-local: {(time.perf_counter() - t0) / 60:.1f} min")
        print(f"results: {RUN_DIR} (scores.json, report.html), {TEXT_RUN_DIR}")
    except VPBatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"error: {' '.join(map(str, exc.cmd))} exited {exc.returncode}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
