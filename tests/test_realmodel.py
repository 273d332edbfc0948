"""A real model nobody here wrote: SmolLM2-135M under llama.cpp's OpenAI-compatible server.

Not skippable by accident: without the server this fails and says how to install it
(`make llama`). Set VPBATCH_SKIP_REALMODEL=1 to skip it on purpose.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vpbatch.demos.llama_server import LlamaUnavailable, serve_llama
from vpbatch.log.runlog import LOG_NAME, iter_log, read_log
from vpbatch.scoring.audit import parse_audit

# A loaded 2-core machine answers a few requests a second at best: allow the slice time.
pytestmark = [pytest.mark.realmodel, pytest.mark.slow, pytest.mark.timeout(1500)]

VERSIONS = ["v1", "v2_reversed"]
N_ITEMS = 40

CONFIG = """
[run]
name = "smollm2-slice"
versions = {versions}
items = {items}
max_tokens = 24

[[models]]
name = "smollm2"
provider = "openai"
model = "smollm2-135m-instruct"
base_url = "{url}"
concurrency = 1
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("VPBATCH_SKIP_REALMODEL") == "1":
        pytest.skip("VPBATCH_SKIP_REALMODEL=1: the real-model sweep was skipped on purpose")
    tmp = tmp_path_factory.mktemp("realmodel")
    try:
        with serve_llama(log_dir=tmp) as url:
            cfg = tmp / "smollm2.toml"
            cfg.write_text(CONFIG.format(versions=VERSIONS, items=N_ITEMS, url=url))
            run = subprocess.run(
                [sys.executable, "-m", "vpbatch", "run", str(cfg), "--run-dir", str(tmp / "run")],
                capture_output=True, text=True, timeout=900,
            )
    except LlamaUnavailable as exc:
        pytest.fail(f"REAL-MODEL TEST COULD NOT RUN: {exc}")
    assert run.returncode == 0, run.stderr[-3000:]
    return tmp / "run"


def test_every_job_of_the_slice_is_logged_once(swept: Path) -> None:
    rows = list(iter_log(swept / LOG_NAME))
    keys = {(r["version"], r["portrait_id"], r["option_id"]) for r in rows}
    assert len(rows) == len(keys) == len(VERSIONS) * N_ITEMS


def test_answers_are_parsed_or_carry_a_reason(swept: Path) -> None:
    for r in read_log(swept / LOG_NAME):
        if r.status == "ok":
            assert r.raw is not None
            assert r.rating_strict is not None or r.strict_reason
        else:
            assert r.error


def test_the_parse_audit_shows_what_a_small_model_says(swept: Path) -> None:
    audit = parse_audit(read_log(swept / LOG_NAME))
    (model,) = audit.values()
    assert model.n == len(VERSIONS) * N_ITEMS
    # A 135M model rambles: the strict parser refuses part of what it says, with reasons.
    print(f"\nSmolLM2 parse audit: {model}")
    assert model.n_strict_ok < model.n
