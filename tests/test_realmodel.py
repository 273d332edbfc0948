"""A real model nobody here wrote: SmolLM2-135M under llama.cpp's OpenAI-compatible server.

One slice of prompts, asked three ways through the real HTTP path: in choice mode with the
form llama-cpp-python's server takes, in the paper's free text, and in choice mode with
OpenAI's form, which that server refuses. Not skippable by accident: without the server this
fails and says how to install it (`make llama`). Set VPBATCH_SKIP_REALMODEL=1 to skip it on
purpose.
"""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from vpbatch.benchmark.dims import PHRASES
from vpbatch.benchmark.parser import parse_official, parse_strict
from vpbatch.demos.llama_server import LlamaUnavailable, serve_llama
from vpbatch.log.records import Record
from vpbatch.log.runlog import LOG_NAME, iter_log, read_log
from vpbatch.scoring.audit import parse_audit

# A loaded 2-core machine answers a few requests a second at best: allow the slice time.
pytestmark = [pytest.mark.realmodel, pytest.mark.slow, pytest.mark.timeout(1500)]

VERSIONS = ["v1", "v2_reversed"]
N_ITEMS = 15
N = len(VERSIONS) * N_ITEMS

CONFIG = """
[run]
name = "smollm2-slice"
versions = {versions}
items = {items}
max_tokens = 32

[[models]]
name = "choice"
provider = "openai"
model = "smollm2-135m-instruct"
base_url = "{url}"
concurrency = 1
answer = "choice"
choice_format = "json_object"

[[models]]
name = "text"
provider = "openai"
model = "smollm2-135m-instruct"
base_url = "{url}"
concurrency = 1
max_tokens = 24

[[models]]
name = "openai-form"
provider = "openai"
model = "smollm2-135m-instruct"
base_url = "{url}"
concurrency = 1
answer = "choice"
max_attempts = 2
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Record]]:
    if os.environ.get("VPBATCH_SKIP_REALMODEL") == "1":
        pytest.skip("VPBATCH_SKIP_REALMODEL=1: the real-model sweep was skipped on purpose")
    tmp = tmp_path_factory.mktemp("realmodel")
    try:
        with serve_llama(log_dir=tmp) as url:
            cfg = tmp / "smollm2.toml"
            cfg.write_text(CONFIG.format(versions=VERSIONS, items=N_ITEMS, url=url))
            run = subprocess.run(
                [sys.executable, "-m", "vpbatch", "run", str(cfg), "--run-dir", str(tmp / "run")],
                capture_output=True, text=True, timeout=1200,
            )
    except LlamaUnavailable as exc:
        pytest.fail(f"REAL-MODEL TEST COULD NOT RUN: {exc}")
    # The refused form fails its jobs for good (a model may be stopped for that): any exit
    # but a crash.
    assert run.returncode in (0, 1, 3) and "Traceback" not in run.stderr, run.stderr[-3000:]
    rows = [r for r in iter_log(tmp / "run" / LOG_NAME) if r["model"] != "openai-form"]
    keys = [(r["model"], r["version"], r["portrait_id"], r["option_id"]) for r in rows]
    assert len(keys) == len(set(keys)) == 2 * N  # every job of both modes logged once
    records = read_log(tmp / "run" / LOG_NAME)
    return {m: [r for r in records if r.model == m] for m in ("choice", "text", "openai-form")}


def test_choice_mode_rates_at_least_99_percent_of_a_real_models_answers(
    swept: dict[str, list[Record]],
) -> None:
    choice = swept["choice"]
    rated = [r for r in choice if r.rating is not None]
    text_rated = sum(r.rating is not None for r in swept["text"])
    print(f"\nSmolLM2 parse rate on {N} prompts: choice {len(rated)}/{N}, "
          f"text {text_rated}/{N} (official parser)")
    assert len(rated) >= 0.99 * N, [(r.raw, r.strict_reason, r.error) for r in choice
                                    if r.rating is None][:5]
    assert all(r.answer_mode == "choice" and r.rating == r.rating_strict for r in choice)
    # The rating is the member the model's JSON names, nothing read into prose.
    assert all(PHRASES[orjson.loads(r.raw or "")["answer"]] == r.rating for r in rated)


def test_the_text_slice_is_logged_with_both_parsers_verdicts_on_its_text(
    swept: dict[str, list[Record]],
) -> None:
    text = swept["text"]
    assert all(r.answer_mode == "text" for r in text)
    for r in text:
        if r.status == "ok":
            strict = parse_strict(r.raw)
            assert (r.rating, r.rating_strict, r.strict_reason) == (
                parse_official(r.raw), strict.rating, strict.reason), r.raw
        else:
            assert r.error
    (model,) = parse_audit(text).values()
    assert model.n == N
    # A 135M model rambles: the strict parser refuses part of what it says, with reasons.
    print(f"\nSmolLM2 parse audit (text): {model}")
    assert model.n_strict_ok < model.n


def test_openais_form_is_refused_by_llama_cpp_python_at_once_and_names_the_fix(
    swept: dict[str, list[Record]],
) -> None:
    refused = swept["openai-form"]
    assert refused and all(r.status == "failed" and r.error_kind == "permanent" for r in refused)
    assert all(r.attempts == 1 for r in refused)  # permanent: never retried
    assert 'choice_format = "json_object"' in (refused[0].error or "")
