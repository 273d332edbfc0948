"""Limits that come without Retry-After: a gateway counting per calendar minute (LiteLLM's rpm)
loses no job; the request rate learns from the 429s (AIMD on rpm); x-ratelimit-remaining-*
on answers paces the client before the first 429.

The sweeps run on a virtual clock (tests/virtual_time.py) shared by client and server: minutes
of the gateway's time in a second or two, the full 60 s window and the default settings.
"""

from __future__ import annotations

import io
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from test_engine import http_model, log_rows, run, serving, write_config
from virtual_time import VirtualTimeLoop

from vpbatch.errors import ConfigError
from vpbatch.sim.server import RunningServer
from vpbatch.sweep.engine import SweepSummary
from vpbatch.sweep.limits import RequestRate, ServerQuota, rpm_bucket
from vpbatch.sweep.progress import ModelProgress, format_line, rate_limit_lines
from vpbatch.sweep.status import collect_status, render_status
from vpbatch.transport import retry
from vpbatch.transport.failures import quota
from vpbatch.transport.records import FailureKind, ProviderError
from vpbatch.transport.retry import RetryPolicy, retrying

pytestmark = pytest.mark.timeout(120)

JOBS = 520  # one version of every item


@pytest.fixture(autouse=True)
def _data(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VPBATCH_DATA", str(data_dir))


class Clock:
    """A hand-moved clock for the limiters' unit tests; `sleep` moves it."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def _gateway_sweep(
    tmp_path: Path, *, start: float, model: dict[str, Any] | None = None,
    stream: io.StringIO | None = None, **server: Any
) -> tuple[SweepSummary, RunningServer, float]:
    """520 jobs against a 300-per-calendar-minute gateway on virtual time, from `start` s
    into a minute; the summary, the server and the virtual seconds the sweep took."""
    loop = VirtualTimeLoop()
    out: list[Any] = []

    async def main() -> None:
        kw = {"rpm": 300, "rpm_window": "calendar", "rpm_retry_after": False, **server}
        async with serving(clock=loop.time, wall_clock=loop.time, **kw) as srv:
            await _warm(srv)
            loop.now = 600.0 + start  # minutes after the warm-up's: a fresh count
            cfg = write_config(tmp_path / "c.toml", [http_model("m", srv, **(model or {}))],
                               items=JOBS, versions=["v1"])
            srv.stats.accepted.clear()
            t0 = loop.time()
            summary = await run(cfg, tmp_path / "run", progress=stream is not None,
                                stream=stream)
            out.extend([summary, srv, loop.time() - t0])

    anyio.run(main, backend_options={"loop_factory": lambda: loop})
    return out[0], out[1], out[2]


async def _warm(srv: RunningServer) -> None:
    # The server builds its respondent in a worker thread on the first request, and virtual
    # time would run on meanwhile: build it before the clock matters (not counted).
    body = {"model": "sim", "messages": [{"role": "user", "content": "hello"}]}
    async with aiohttp.ClientSession() as session, session.post(
        srv.url + "/chat/completions", json=body,
        timeout=aiohttp.ClientTimeout(total=None)) as r:
        assert r.status == 200
    srv.stats.requests = srv.stats.ok = 0


# -- the acceptance test --------------------------------------------------------------------


@pytest.mark.parametrize("start", [0.0, 37.0, 59.5])
def test_520_jobs_against_a_300_per_calendar_minute_gateway_without_retry_after_lose_none(
    tmp_path: Path, start: float
) -> None:
    summary, srv, took = _gateway_sweep(tmp_path, start=start)
    m = summary.models["m"]
    assert (m.ok, m.failed) == (JOBS, 0) and summary.exit_code == 0
    rows = log_rows(tmp_path / "run")
    assert len({r["job_id"] for r in rows}) == JOBS and all(r["status"] == "ok" for r in rows)
    assert srv.stats.rpm_rejected > 0  # the gateway did refuse: the test tests something
    assert sum(r.get("extra", {}).get("rate_limited", 0) for r in rows) == srv.stats.sent_429
    assert took < 4 * 60.0, took  # 520 jobs need two windows at best, three or four here


def test_the_learned_rate_keeps_the_second_minute_nearly_free_of_429s(tmp_path: Path) -> None:
    # Minute one: 300 go through at once, then refusals until it turns; the rate is cut to
    # 0.9 x 300 = 270 rpm, under the limit, so the rest go through with few refusals.
    summary, srv, _ = _gateway_sweep(tmp_path, start=0.0)
    accepted = srv.stats.accepted
    later = [t for t in accepted if t >= 660.0]
    assert len(later) == JOBS - 300
    # After the first window, refusals are those of jobs retried at the turn of the minute.
    assert srv.stats.rpm_rejected < 250, srv.stats.rpm_rejected


def test_remaining_headers_pace_the_client_before_the_first_429(tmp_path: Path) -> None:
    summary, srv, took = _gateway_sweep(tmp_path, start=20.0, ratelimit_headers=True)
    assert summary.models["m"].failed == 0
    # Without the headers the same sweep meets hundreds of 429s (above); with them, only
    # requests already in flight when the count ran out are refused.
    assert srv.stats.rpm_rejected <= 16, srv.stats.rpm_rejected


def test_a_shorter_rate_limit_window_than_the_gateways_loses_jobs_and_says_so(
    tmp_path: Path,
) -> None:
    # The setting matters: told the window is 5 s with only 3 attempts, a job refused for most
    # of a minute gives up, is logged as failed with the 429, and (tolerating none) the run
    # fails with exit 3.
    summary, srv, _ = _gateway_sweep(tmp_path, start=0.0, model={
        "rate_limit_window": 5.0, "max_attempts": 3, "fail_on_error": 0})
    m = summary.models["m"]
    assert m.failed > 0 and summary.exit_code == 3
    assert m.commonest is not None and "429" in m.commonest


# -- the retry loop: by time, not only by count ------------------------------------------------


def _refusing_for(
    seconds: float, retry_after: float | None = None
) -> Callable[[int], Awaitable[str]]:
    """An attempt refused with 429 until `seconds` of the retry clock have passed."""
    t0: list[float] = []

    async def attempt(n: int) -> str:
        t0[:] = t0 or [retry.now()]
        if retry.now() - t0[0] < seconds:
            raise ProviderError(FailureKind.RATE_LIMITED, "HTTP 429", status=429,
                                retry_after=retry_after)
        return f"answered at attempt {n}"

    return attempt


def test_a_job_refused_for_less_than_the_window_is_not_lost_whatever_the_attempts() -> None:
    async def main() -> None:
        with retry.testing() as waits:
            got = await retrying(RetryPolicy(attempts=3, window=60.0), _refusing_for(59.0))
        assert got.startswith("answered") and len(waits) > 3  # more tries than attempts=3

    anyio.run(main)


def test_a_job_refused_beyond_the_window_gives_up_once_its_attempts_are_spent() -> None:
    async def main() -> None:
        with retry.testing() as waits, pytest.raises(retry.GaveUp) as gave_up:
            await retrying(RetryPolicy(attempts=3, window=60.0), _refusing_for(10_000.0))
        assert sum(waits[:-1]) < 60.0 <= sum(waits)  # the last wait ends past the window
        assert gave_up.value.error.status == 429

    anyio.run(main)


def test_a_429_without_a_wait_backs_off_at_most_a_quarter_window() -> None:
    p = RetryPolicy(jitter=False, window=60.0)
    assert p.next_delay(12, elapsed=0.0, refused_for=30.0) == 15.0
    assert p.next_delay(12, elapsed=0.0) is None  # not a 429: attempts (8) are spent


def test_retry_after_still_wins_over_the_quarter_window_ceiling() -> None:
    p = RetryPolicy(jitter=False, window=60.0)
    assert p.next_delay(2, elapsed=0.0, retry_after=40.0, refused_for=10.0) == 40.0


def test_the_total_time_still_bounds_a_rate_limited_job() -> None:
    p = RetryPolicy(total=100.0, window=60.0, jitter=False)
    assert p.next_delay(20, elapsed=95.0, refused_for=30.0) is None


def test_rate_limit_window_longer_than_max_retry_seconds_is_a_config_error(
    tmp_path: Path,
) -> None:
    model = {"name": "m", "provider": "openai", "model": "x", "base_url": "http://127.0.0.1:9/v1",
             "rate_limit_window": 900.0}
    with pytest.raises(ConfigError, match="rate_limit_window.*max_retry_seconds"):
        write_config(tmp_path / "c.toml", [model])


# -- AIMD on the request rate ----------------------------------------------------------------


def _rate(rpm: float | None, clock: Clock) -> RequestRate:
    return RequestRate(rpm, hold=60.0, clock=clock, sleep=clock.sleep)


def test_two_refusals_cut_the_rate_to_nine_tenths_of_what_got_through() -> None:
    clock = Clock()
    rate = _rate(None, clock)
    for _ in range(300):
        rate.success()
    assert not rate.refused(clock())  # one refusal is not yet a pattern
    assert rate.refused(clock())
    assert rate.rpm == pytest.approx(270.0) and rate.learned


def test_a_configured_rate_is_cut_from_itself_when_more_got_through_than_it_allows() -> None:
    clock = Clock()
    rate = _rate(100.0, clock)
    for _ in range(150):
        rate.success()
    rate.refused(clock())
    rate.refused(clock())
    assert rate.rpm == pytest.approx(90.0)


def test_refusals_of_requests_sent_within_a_window_of_the_cut_do_not_cut_again() -> None:
    # A window-counting gateway keeps refusing until its window turns, whatever the new rate.
    clock = Clock()
    rate = _rate(None, clock)
    for _ in range(300):
        rate.success()
    rate.refused(clock()), rate.refused(clock())
    clock.t += 30.0
    assert not rate.refused(clock() - 1.0) and not rate.refused(clock())
    clock.t += 31.0
    rate.success()
    assert not rate.refused(clock()) and rate.refused(clock())  # a new round: cut again
    assert rate.cuts == 2


def test_successes_raise_a_learned_rate_slowly_up_to_the_configured_one() -> None:
    clock = Clock()
    rate = _rate(250.0, clock)
    for _ in range(300):
        rate.success()
    rate.refused(clock()), rate.refused(clock())
    assert rate.rpm == pytest.approx(225.0)
    for _ in range(200):  # +0.05 rpm each
        rate.success()
    assert rate.rpm == pytest.approx(235.0)
    for _ in range(10_000):
        rate.success()
    assert rate.rpm == 250.0  # never above what the config allows


def test_refusals_with_nothing_through_and_no_limit_set_change_nothing() -> None:
    clock = Clock()
    rate = _rate(None, clock)
    assert not rate.refused(clock()) and not rate.refused(clock())
    assert rate.rpm is None


def test_a_cut_rate_paces_the_next_requests_at_once() -> None:
    clock = Clock()
    rate = _rate(None, clock)

    async def main() -> None:
        for _ in range(10):
            await rate.acquire()  # unlimited: no wait
        assert clock.slept == []
        rate.rpm = 60.0  # a burst of 1, then paced (rpm_bucket)
        for _ in range(3):
            await rate.acquire()

    anyio.run(main)
    _, per_second = rpm_bucket(60.0)
    assert clock.slept == pytest.approx([1 / per_second] * 2)


# -- pacing by what the server says is left -------------------------------------------------


def test_what_is_left_is_spread_over_the_time_until_the_reset() -> None:
    clock = Clock()
    left = ServerQuota(60.0, clock=clock, sleep=clock.sleep)
    left.observe(4, 20.0)

    async def main() -> None:
        for _ in range(4):
            await left.acquire()

    anyio.run(main)
    assert clock.slept == pytest.approx([5.0, 5.0, 5.0])  # 4 requests over 20 s


def test_nothing_left_waits_for_the_reset() -> None:
    clock = Clock()
    left = ServerQuota(60.0, clock=clock, sleep=clock.sleep)
    left.observe(0, 12.5)
    anyio.run(left.acquire)
    assert clock.slept == [12.5] and left.waited == 12.5


def test_past_the_reset_with_no_new_word_requests_go_freely() -> None:
    clock = Clock()
    left = ServerQuota(60.0, clock=clock, sleep=clock.sleep)
    left.observe(0, 1.0)
    clock.t += 2.0
    anyio.run(left.acquire)
    assert clock.slept == []


def test_a_remaining_count_without_a_reset_is_taken_over_one_window() -> None:
    clock = Clock()
    left = ServerQuota(60.0, clock=clock, sleep=clock.sleep)
    left.observe(0, None)  # LiteLLM: x-ratelimit-remaining-requests, no reset header
    anyio.run(left.acquire)
    assert clock.slept == [60.0]


def test_plenty_left_costs_no_noticeable_wait() -> None:
    clock = Clock()
    left = ServerQuota(60.0, clock=clock, sleep=clock.sleep)

    async def main() -> None:
        for _ in range(100):
            left.observe(9_999, 0.006)  # OpenAI at 10k rpm: "6ms"
            await left.acquire()

    anyio.run(main)
    assert sum(clock.slept) < 1e-4


@pytest.mark.parametrize(("headers", "want"), [
    ({"x-ratelimit-remaining-requests": "12", "x-ratelimit-reset-requests": "6m0s",
      "x-ratelimit-remaining-tokens": "1000", "x-ratelimit-reset-tokens": "20ms"},
     (12.0, 360.0, 1000.0, 0.02)),
    ({"anthropic-ratelimit-requests-remaining": "3",
      "anthropic-ratelimit-requests-reset": "1970-01-01T00:16:50Z"},
     (3.0, 10.0, None, None)),
    ({"X-RateLimit-Remaining-Requests": "199"}, (199.0, None, None, None)),  # LiteLLM
])
def test_quota_reads_openai_anthropic_and_gateway_headers(
    headers: dict[str, str], want: tuple[float | None, ...]
) -> None:
    q = quota(headers, now=1000.0)
    assert q is not None
    assert (q.requests, q.requests_reset, q.tokens, q.tokens_reset) == want


def test_an_answer_without_rate_limit_headers_has_no_quota() -> None:
    assert quota({"content-type": "application/json"}) is None


# -- what the summary and the status say ----------------------------------------------------


def test_the_summary_and_the_status_show_the_429s_and_the_learned_rate(tmp_path: Path) -> None:
    out = io.StringIO()
    summary, srv, _ = _gateway_sweep(tmp_path, start=0.0, stream=out)
    n = srv.stats.rpm_rejected
    text = out.getvalue()
    assert f"rate limited: {n} x 429, {n} without Retry-After; every one retried" in text
    # Cut to 270 rpm (0.9 x 300), then grown by 0.05 rpm per answer since.
    learned = re.search(r"request rate learned from the 429s: (\d+) rpm", text)
    assert learned is not None and 270 <= int(learned[1]) <= 270 + 0.05 * JOBS
    cfg = write_config(tmp_path / "again.toml", [{"name": "m", "provider": "sim", "model": "s"}],
                       items=JOBS, versions=["v1"])
    table = "\n".join(render_status(collect_status(tmp_path / "run" / "log.jsonl", cfg)))
    assert f"m: {n:,} requests refused with 429, each retried" in table



def test_the_summary_names_the_429s_and_the_rate_learned() -> None:
    p = ModelProgress("m", 10)
    p.limited, p.unsaid, p.learned_rpm = 57, 57, 240.0
    lines = "\n".join(rate_limit_lines(p))
    assert "57 x 429, 57 without Retry-After" in lines
    assert "240 rpm" in lines and "set rpm = 240" in lines


def test_the_progress_line_shows_a_learned_rate() -> None:
    p = ModelProgress("m", 10)
    assert "learned" not in format_line(p)
    p.learned_rpm = 270.4
    assert format_line(p).endswith("rpm 270 (learned)")
