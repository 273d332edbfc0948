"""The simulator's HTTP face on 127.0.0.1: OpenAI-shaped answers, each injected fault, its own
RPM limit (sliding 60 s window, on a patched clock), stats, key checks and `vpbatch sim serve`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson
import pytest

from vpbatch.benchmark.dataset import load_dataset
from vpbatch.benchmark.parser import parse_official
from vpbatch.benchmark.prompts import item_prompt
from vpbatch.config.schema import ModelConfig
from vpbatch.errors import ConfigError
from vpbatch.providers.openai import openai_provider
from vpbatch.sim.faults import FaultPlan, draw_fault
from vpbatch.sim.server import RunningServer, SimServerConfig, make_app, start_server
from vpbatch.transport.records import FailureKind, ProviderError, RequestParams

Reply = tuple[int, dict[str, str], bytes]


@pytest.fixture(scope="module")
def prompt(data_dir: Path) -> str:
    return item_prompt(load_dataset(data_dir), "v1", 0)


def _body(prompt: str, model: str = "sim", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": prompt}],
            "temperature": 0, "max_tokens": 64, "seed": 42, **extra}


def _serve(
    cfg: SimServerConfig,
    test: Callable[[RunningServer, Callable[..., Awaitable[Reply]]], Awaitable[None]],
) -> None:
    """Start a server, give the test a `post(body, headers=None)` helper, always stop it."""

    async def main() -> None:
        server = await start_server(cfg)
        try:
            async with aiohttp.ClientSession() as session:

                async def post(body: Any, headers: dict[str, str] | None = None) -> Reply:
                    url = server.url + "/chat/completions"
                    async with session.post(url, data=orjson.dumps(body), headers=headers) as r:
                        return r.status, dict(r.headers), await r.read()

                with anyio.fail_after(60):
                    await test(server, post)
        finally:
            await server.close()

    anyio.run(main)


def _cfg(data_dir: Path, **kw: Any) -> SimServerConfig:
    return SimServerConfig(data=data_dir, **kw)


def test_answers_in_the_openai_chat_completion_shape(data_dir: Path, prompt: str) -> None:
    async def test(server: RunningServer, post: Any) -> None:
        status, _, raw = await post(_body(prompt))
        assert status == 200
        out = orjson.loads(raw)
        choice = out["choices"][0]
        assert parse_official(choice["message"]["content"]) is not None
        assert choice["finish_reason"] == "stop"
        assert out["usage"]["total_tokens"] > 0 and out["model"] == "sim"

    _serve(_cfg(data_dir), test)


def test_the_same_request_gets_the_same_answer(data_dir: Path, prompt: str) -> None:
    async def test(server: RunningServer, post: Any) -> None:
        answers = {orjson.loads((await post(_body(prompt)))[2])["choices"][0]["message"]["content"]
                   for _ in range(3)}
        assert len(answers) == 1

    _serve(_cfg(data_dir), test)


def test_replay_model_answers_with_the_recorded_text(data_dir: Path, prompt: str) -> None:
    async def test(server: RunningServer, post: Any) -> None:
        status, _, raw = await post(_body(prompt, model="replay:gpt-4o-2024-05-13"))
        assert status == 200
        assert parse_official(orjson.loads(raw)["choices"][0]["message"]["content"]) is not None

    _serve(_cfg(data_dir), test)


def test_sim_settings_reach_every_simulated_model(data_dir: Path, prompt: str) -> None:
    async def test(server: RunningServer, post: Any) -> None:
        raw = (await post(_body(prompt, model="sim:explorer")))[2]
        assert parse_official(orjson.loads(raw)["choices"][0]["message"]["content"]) is None

    _serve(_cfg(data_dir, settings={"p_refuse": 1.0}), test)


def test_injected_429_carries_retry_after(data_dir: Path, prompt: str) -> None:
    async def test(server: RunningServer, post: Any) -> None:
        status, headers, _ = await post(_body(prompt))
        assert status == 429 and headers["Retry-After"] == "2"
        assert server.stats.sent_429 == 1 and server.stats.faults == {"429": 1}

    _serve(_cfg(data_dir, faults=FaultPlan(p_429=1.0, retry_after_s=2)), test)


@pytest.mark.parametrize("code", [500, 503])
def test_injected_server_errors(data_dir: Path, prompt: str, code: int) -> None:
    async def test(server: RunningServer, post: Any) -> None:
        status, _, raw = await post(_body(prompt))
        assert status == code and "error" in orjson.loads(raw)

    plan = FaultPlan(p_500=1.0) if code == 500 else FaultPlan(p_503=1.0)
    _serve(_cfg(data_dir, faults=plan), test)


def test_injected_drop_closes_the_connection_without_an_answer(
    data_dir: Path, prompt: str
) -> None:
    async def test(server: RunningServer, post: Any) -> None:
        with pytest.raises(aiohttp.ClientError):
            await post(_body(prompt))
        assert server.stats.faults == {"drop": 1}

    _serve(_cfg(data_dir, faults=FaultPlan(p_drop=1.0)), test)


def test_injected_malformed_body_is_a_200_that_is_not_json(data_dir: Path, prompt: str) -> None:
    async def test(server: RunningServer, post: Any) -> None:
        status, _, raw = await post(_body(prompt))
        assert status == 200
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(raw)

    _serve(_cfg(data_dir, faults=FaultPlan(p_malformed=1.0)), test)


def test_injected_slow_answer_outlasts_a_short_read_timeout(data_dir: Path, prompt: str) -> None:
    async def test(server: RunningServer, post: Any) -> None:
        url = server.url + "/chat/completions"
        async with aiohttp.ClientSession() as session:
            with pytest.raises(TimeoutError):
                timeout = aiohttp.ClientTimeout(sock_read=0.05)
                async with session.post(url, json=_body(prompt), timeout=timeout) as r:
                    await r.read()
        assert server.stats.faults == {"slow": 1}

    _serve(_cfg(data_dir, faults=FaultPlan(p_slow=1.0, slow_s=0.5)), test)


def _message(raw: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """The first choice and the usage of a chat.completion body."""
    doc = orjson.loads(raw)
    return doc["choices"][0], doc["usage"]


def test_injected_digits_answer_the_rating_as_a_number(data_dir: Path, prompt: str) -> None:
    async def test(server: RunningServer, post: Any) -> None:
        status, _, raw = await post(_body(prompt))
        choice, _ = _message(raw)
        assert status == 200 and choice["message"]["content"] in list("123456")

    _serve(_cfg(data_dir, faults=FaultPlan(p_digits=1.0)), test)


def test_injected_length_spends_the_whole_budget_reasoning(data_dir: Path, prompt: str) -> None:
    async def test(server: RunningServer, post: Any) -> None:
        short, _, raw = await post(_body(prompt, max_tokens=4096))
        choice, usage = _message(raw)
        assert choice["message"]["content"] is None and choice["finish_reason"] == "length"
        assert usage["completion_tokens_details"] == {"reasoning_tokens": 4096}
        _, _, raw = await post(_body(prompt, max_tokens=8192))  # room left after thinking
        choice, usage = _message(raw)
        assert choice["finish_reason"] == "stop" and choice["message"]["content"]
        assert usage["completion_tokens_details"] == {"reasoning_tokens": 5000}

    _serve(_cfg(data_dir, faults=FaultPlan(p_length=1.0, think_tokens=5000)), test)


def test_injected_refusal_sets_the_refusal_field_and_no_content(
    data_dir: Path, prompt: str
) -> None:
    async def test(server: RunningServer, post: Any) -> None:
        _, _, raw = await post(_body(prompt))
        message = _message(raw)[0]["message"]
        assert message["content"] is None
        assert message["refusal"] == "I'm sorry, I can't help with that."

    _serve(_cfg(data_dir, faults=FaultPlan(p_refusal=1.0)), test)


def test_a_retried_request_eventually_succeeds(data_dir: Path, prompt: str) -> None:
    async def test(server: RunningServer, post: Any) -> None:
        statuses = [(await post(_body(prompt)))[0] for _ in range(4)]
        assert statuses == [500, 500, 500, 200]

    _serve(_cfg(data_dir, faults=FaultPlan(p_500=1.0, max_faulty_attempts=3)), test)


def test_faults_are_drawn_per_request_and_attempt_deterministically() -> None:
    plan = FaultPlan(p_429=0.2, p_500=0.2, p_drop=0.2)
    draws = [draw_fault(plan, f"key{k}", a, seed=1) for k in range(50) for a in range(3)]
    assert draws == [draw_fault(plan, f"key{k}", a, seed=1) for k in range(50) for a in range(3)]
    assert {"429", "500", "drop", None} == set(draws)


def test_fault_probabilities_above_one_in_total_are_refused() -> None:
    with pytest.raises(ConfigError, match="sum"):
        FaultPlan(p_429=0.6, p_500=0.6)


def test_rpm_limit_sends_429_with_retry_after_once_the_window_is_full(
    data_dir: Path, prompt: str
) -> None:
    now = [1000.0]

    async def test(server: RunningServer, post: Any) -> None:
        ok = [(await post(_body(prompt, seed=i)))[0] for i in range(3)]
        now[0] += 20.0
        status, headers, _ = await post(_body(prompt, seed=9))
        assert ok == [200, 200, 200] and status == 429
        assert headers["Retry-After"] == "40"  # the oldest request leaves the window at 1060
        now[0] += 40.0
        assert (await post(_body(prompt, seed=9)))[0] == 200
        assert server.stats.rpm_rejected == 1
        assert server.stats.accepted == [1000.0, 1000.0, 1000.0, 1060.0]

    _serve(_cfg(data_dir, rpm=3, clock=lambda: now[0]), test)


def test_calendar_rpm_window_admits_rpm_per_wall_minute_and_resets_at_the_boundary(
    data_dir: Path, prompt: str
) -> None:
    wall = [1_000_000 * 60 + 50.0]  # ten seconds before a minute turns

    async def test(server: RunningServer, post: Any) -> None:
        first = [(await post(_body(prompt, seed=i)))[0] for i in range(4)]
        status, headers, _ = await post(_body(prompt, seed=9))
        assert first == [200, 200, 200, 429]
        assert status == 429 and "Retry-After" not in headers  # as LiteLLM answers
        wall[0] += 10.0  # the next calendar minute: a fresh count, not a sliding one
        assert [(await post(_body(prompt, seed=i)))[0] for i in range(4)] == [200] * 3 + [429]
        assert server.stats.rpm_rejected == 3

    _serve(_cfg(data_dir, rpm=3, rpm_window="calendar", rpm_retry_after=False,
                wall_clock=lambda: wall[0]), test)


def test_ratelimit_headers_say_what_is_left_and_when_it_resets(
    data_dir: Path, prompt: str
) -> None:
    wall = [600.0 + 45.0]

    async def test(server: RunningServer, post: Any) -> None:
        _, headers, _ = await post(_body(prompt))
        assert headers["x-ratelimit-limit-requests"] == "3"
        assert headers["x-ratelimit-remaining-requests"] == "2"
        assert headers["x-ratelimit-reset-requests"] == "15.000s"

    _serve(_cfg(data_dir, rpm=3, rpm_window="calendar", ratelimit_headers=True,
                wall_clock=lambda: wall[0]), test)


def test_an_unknown_rpm_window_is_refused(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match="rpm_window"):
        make_app(_cfg(data_dir, rpm=3, rpm_window="fixed"))


def test_stats_count_requests_per_body(data_dir: Path, prompt: str) -> None:
    async def test(server: RunningServer, post: Any) -> None:
        for seed in (1, 1, 2):
            await post(_body(prompt, seed=seed))
        url = server.url.removesuffix("/v1") + "/stats"
        async with aiohttp.ClientSession() as session, session.get(url) as r:
            stats = await r.json()
        assert stats["requests"] == 3 and stats["ok"] == 3
        assert sorted(stats["per_key"].values()) == [1, 2]
        assert len(stats["accepted"]) == 3

    _serve(_cfg(data_dir), test)


def test_a_required_key_is_checked(data_dir: Path, prompt: str) -> None:
    async def test(server: RunningServer, post: Any) -> None:
        assert (await post(_body(prompt)))[0] == 401
        assert (await post(_body(prompt), {"Authorization": "Bearer wrong"}))[0] == 401
        assert (await post(_body(prompt), {"Authorization": "Bearer sesame"}))[0] == 200
        assert server.stats.unauthorized == 2

    _serve(_cfg(data_dir, require_key="sesame"), test)


def test_a_malformed_request_is_a_400(data_dir: Path) -> None:
    async def test(server: RunningServer, post: Any) -> None:
        assert (await post({"model": "sim", "messages": "hi"}))[0] == 400
        assert (await post({"messages": [{"role": "user", "content": "hi"}]}))[0] == 400

    _serve(_cfg(data_dir), test)


def test_an_unknown_model_is_a_404_naming_the_choices(data_dir: Path, prompt: str) -> None:
    async def test(server: RunningServer, post: Any) -> None:
        status, _, raw = await post(_body(prompt, model="gpt-9"))
        assert status == 404 and b"universalist" in raw

    _serve(_cfg(data_dir), test)


def test_models_lists_the_profiles_and_the_replayable_models(data_dir: Path) -> None:
    async def test(server: RunningServer, post: Any) -> None:
        async with aiohttp.ClientSession() as s, s.get(server.url + "/models") as r:
            ids = {m["id"] for m in (await r.json())["data"]}
        assert {"sim", "sim:universalist", "replay:gpt-4o-2024-05-13"} <= ids
        assert sum(i.startswith("replay:") for i in ids) == 33

    _serve(_cfg(data_dir), test)


def test_only_loopback_addresses_are_bound(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match="loopback"):
        anyio.run(start_server, _cfg(data_dir), "0.0.0.0")


def test_the_openai_provider_reads_its_answers_and_failures(data_dir: Path, prompt: str) -> None:
    """The real client path: the provider classifies the simulator's faults as designed."""

    async def test(server: RunningServer, post: Any) -> None:
        cfg = ModelConfig(name="s", provider="openai", model="sim", base_url=server.url)
        msgs = [{"role": "user", "content": prompt}]
        params = RequestParams(temperature=0.0, max_tokens=64, seed=42)
        async with aiohttp.ClientSession() as session:
            provider = openai_provider(cfg, session, None)
            with pytest.raises(ProviderError) as err:
                await provider.complete(msgs, params)
            assert err.value.kind is FailureKind.RATE_LIMITED and err.value.retry_after == 0.5
            answer = await provider.complete(msgs, params)
            assert parse_official(answer.text) is not None

    plan = FaultPlan(p_429=1.0, retry_after_s=0.5, max_faulty_attempts=1)
    _serve(_cfg(data_dir, faults=plan), test)


def test_sim_serve_runs_as_a_subprocess_until_sigterm(data_dir: Path, tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    env = {**os.environ, "VPBATCH_DATA": str(data_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vpbatch", "sim", "serve", "--port-file", str(port_file),
         "--fault-500", "0.5", "--noise", "0.3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:")
        port = int(port_file.read_text())
        assert line.strip().endswith(f":{port}/v1")

        async def get_stats() -> dict[str, Any]:
            url = f"http://127.0.0.1:{port}/stats"
            async with aiohttp.ClientSession() as s, s.get(url) as r:
                out: dict[str, Any] = await r.json()
                return out

        assert anyio.run(get_stats)["requests"] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_sim_serve_ends_with_its_totals_not_an_alarm(data_dir: Path, tmp_path: Path) -> None:
    # Every sweep against the simulator ends by shutting it down: "stopped: ..." read like
    # an interrupted sweep.
    port_file = tmp_path / "port"
    env = {**os.environ, "VPBATCH_DATA": str(data_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vpbatch", "sim", "serve", "--port-file", str(port_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    assert proc.stdout is not None and proc.stdout.readline().startswith("listening on")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert err.strip().splitlines()[-1] == (
        "simulator shut down; it served 0 requests in all: 0 answered, 0 rate-limited (429)")
