"""`vpbatch sim serve`: run the simulated respondent as an OpenAI-compatible loopback server."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import anyio
import click

from vpbatch.benchmark.layout import resolve_data_dir
from vpbatch.errors import ConfigError, VPBatchError
from vpbatch.sim.faults import FaultPlan
from vpbatch.sim.server import LOOPBACK, RPM_WINDOWS, SimServerConfig, start_server

__all__ = ["sim", "serve"]


@click.group()
def sim() -> None:
    """The simulated respondent (known value profile, replay of the 33 recorded models)."""


@sim.command()
@click.option("--host", default="127.0.0.1", show_default=True, type=click.Choice(LOOPBACK),
              help="Loopback address to bind (never a public one).")
@click.option("--port", default=0, show_default=True, help="0 picks a free port.")
@click.option("--port-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the bound port here once listening (for scripts).")
@click.option("--latency-ms", default=0.0, show_default=True)
@click.option("--jitter-ms", default=0.0, show_default=True)
@click.option("--rpm", type=float, help="Requests per minute before 429 (sliding 60 s window).")
@click.option("--rpm-window", type=click.Choice(RPM_WINDOWS), default="sliding",
              show_default=True,
              help="How --rpm counts: a sliding window, or per calendar minute (LiteLLM).")
@click.option("--rpm-retry-after/--no-rpm-retry-after", default=True, show_default=True,
              help="Whether --rpm's 429s carry Retry-After (LiteLLM's do not).")
@click.option("--ratelimit-headers", is_flag=True,
              help="Send x-ratelimit-limit/remaining/reset-requests on answers.")
@click.option("--window-s", default=60.0, show_default=True,
              help="The --rpm window's length in seconds (shrink it to reproduce quickly).")
@click.option("--fault-429", default=0.0, show_default=True, help="Per-attempt probability.")
@click.option("--retry-after", default=1.0, show_default=True, help="Seconds, on injected 429s.")
@click.option("--fault-500", default=0.0, show_default=True)
@click.option("--fault-503", default=0.0, show_default=True)
@click.option("--fault-drop", default=0.0, show_default=True)
@click.option("--fault-malformed", default=0.0, show_default=True)
@click.option("--fault-slow", default=0.0, show_default=True)
@click.option("--slow-s", default=5.0, show_default=True)
@click.option("--fault-digits", default=0.0, show_default=True,
              help="Per-attempt probability of an answer that is the rating as a digit.")
@click.option("--fault-length", default=0.0, show_default=True,
              help="Per-attempt probability of content null, finish_reason length, the whole "
              "max_tokens spent on reasoning.")
@click.option("--fault-refusal", default=0.0, show_default=True,
              help="Per-attempt probability of content null with OpenAI's refusal field.")
@click.option("--think-tokens", default=0, show_default=True,
              help="With --fault-length: a max_tokens above this leaves room to answer.")
@click.option("--max-faulty-attempts", default=4, show_default=True,
              help="From this attempt of a request on, never inject a fault.")
@click.option("--seed", default=0, show_default=True, help="Seeds answers, noise and faults.")
@click.option("--noise", type=float, help="Sd of the simulated answers' noise (rating points).")
@click.option("--p-refuse", type=float, help="Share of simulated answers that are refusals.")
@click.option("--p-verbose", type=float,
              help="Share of simulated answers wrapped in extra words.")
@click.option("--primacy", type=click.FloatRange(0, 1),
              help="Chance an answer is the phrase listed first, whatever the latent rating.")
@click.option("--recency", type=click.FloatRange(0, 1),
              help="Chance an answer is the phrase listed last, whatever the latent rating.")
@click.option("--straightline", type=click.FloatRange(0, 1),
              help="Chance an answer is the respondent's one fixed phrase.")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path),
              help="Dataset root (default: VPBATCH_DATA, else the fetched cache).")
@click.option("--replay-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Recorded outputs (default: <data>/lm_evaluation/outputs/final).")
@click.option("--require-key-env", metavar="NAME",
              help="Answer 401 unless the Bearer key equals this env variable's value.")
@click.option("--batch-delay-s", default=0.0, show_default=True,
              help="Seconds after creation at which a batch (OpenAI or Anthropic) ends.")
@click.option("--batch-expire-after", type=int,
              help="A batch answers this many requests; the rest expire.")
@click.option("--batch-p-invalid", default=0.0, show_default=True,
              help="Share of batch requests answered 400 (a permanent error).")
def serve(
    host: str, port: int, port_file: Path | None, latency_ms: float, jitter_ms: float,
    rpm: float | None, rpm_window: str, rpm_retry_after: bool, ratelimit_headers: bool,
    window_s: float, fault_429: float, retry_after: float, fault_500: float,
    fault_503: float, fault_drop: float, fault_malformed: float, fault_slow: float,
    slow_s: float, fault_digits: float, fault_length: float, fault_refusal: float,
    think_tokens: int, max_faulty_attempts: int, seed: int, noise: float | None,
    p_refuse: float | None, p_verbose: float | None, primacy: float | None,
    recency: float | None, straightline: float | None, data: Path | None,
    replay_dir: Path | None, require_key_env: str | None, batch_delay_s: float,
    batch_expire_after: int | None, batch_p_invalid: float,
) -> None:
    """Serve POST /v1/chat/completions until SIGINT or SIGTERM."""
    key = None
    if require_key_env:
        key = os.environ.get(require_key_env)
        if not key:  # the key itself never goes on a command line, where `ps` would show it
            raise ConfigError(f"--require-key-env: ${require_key_env} is not set; export it")
    faults = FaultPlan(
        p_429=fault_429, retry_after_s=retry_after, p_500=fault_500, p_503=fault_503,
        p_drop=fault_drop, p_malformed=fault_malformed, p_slow=fault_slow, slow_s=slow_s,
        p_digits=fault_digits, p_length=fault_length, p_refusal=fault_refusal,
        think_tokens=think_tokens, max_faulty_attempts=max_faulty_attempts,
    )
    data = resolve_data_dir(data)  # no dataset: say so now, not as a 404 on every request
    given = {"noise": noise, "p_refuse": p_refuse, "p_verbose": p_verbose, "primacy": primacy,
             "recency": recency, "straightline": straightline}
    if window_s <= 0:
        raise ConfigError(f"--window-s must be positive, got {window_s:g}")
    cfg = SimServerConfig(latency_ms=latency_ms, jitter_ms=jitter_ms, rpm=rpm,
                          rpm_window=rpm_window, rpm_retry_after=rpm_retry_after,
                          ratelimit_headers=ratelimit_headers, window_s=window_s, faults=faults,
                          seed=seed, replay_dir=replay_dir, require_key=key, data=data,
                          settings={k: v for k, v in given.items() if v is not None},
                          batch_delay_s=batch_delay_s, batch_expire_after=batch_expire_after,
                          batch_p_invalid=batch_p_invalid)
    anyio.run(_serve, cfg, host, port, port_file)


async def _serve(cfg: SimServerConfig, host: str, port: int, port_file: Path | None) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        try:
            server = await start_server(cfg, host, port)
        except OSError as exc:
            raise VPBatchError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another "
                "--port, or 0 for any free one"
            ) from None
        try:
            if port_file is not None:
                port_file.write_text(f"{server.port}\n")
            click.echo(f"listening on {server.url}")
            async for _ in signals:
                break
        finally:
            await server.close()
    st = server.stats
    # Said when the server is shut down, which is how every sweep against it ends: a totals
    # line, not an alarm ("stopped: ..." read like an interrupted sweep).
    click.echo(f"simulator shut down; it served {st.requests} requests in all: {st.ok} "
               f"answered, {st.sent_429} rate-limited (429)", err=True)
