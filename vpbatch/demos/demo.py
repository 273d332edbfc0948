"""`make run`: the whole product on one machine, without keys, through real HTTP.

Starts `vpbatch sim serve` on a free 127.0.0.1 port, runs configs/demo.toml against it (the
33 recorded paper models replayed, plus a simulated respondent with a known profile under
personas and the ten steering prompts), scores, checks what must come back out, writes the
report and prints where everything is. A second run resumes: nothing is sent again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np
import orjson
from scipy.stats import spearmanr

import vpbatch.providers  # noqa: F401 (registers the builtin providers)
from vpbatch.benchmark.conditions import PERSONA_PREFIX, steer_condition
from vpbatch.benchmark.dims import PVQ, VANILLA
from vpbatch.config.schema import Config, load_config
from vpbatch.errors import ConfigError, VPBatchError
from vpbatch.scoring.scorer import ScoreOptions, Scores
from vpbatch.scoring.trust import (
    NOT_MEASURED,
    NOT_REPLICATING,
    REPLICATES,
    WEAK,
    format_trust,
    trust_of,
    verdict_counts,
)

__all__ = ["main", "demo", "SIM_URL", "DemoResult", "run_demo", "SimProcess"]

SIM_URL = "${SIM_URL}"  # the placeholder a config's base_url uses for the demo's server
REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO / "configs" / "demo.toml"
# The paper's Table 2 as shipped inside the package, for a clone without ../shared/paper.
SHIPPED_TABLE2 = Path(__file__).resolve().parents[1] / "benchmark/reference/paper_table2.json"
# The one Table 2 cell the default rule does not reproduce (see tests/test_paper_tables.py):
# the authors' averaging dropped item (2011, 1), whose v1 answer failed.
DOCUMENTED_OFF = {("llama-3.1-8b-instruct", "Stimulation")}


class SimProcess:
    """`vpbatch sim serve` as a child process: its own core, stopped on exit."""

    __slots__ = ("proc", "url", "port")

    def __init__(self, args: list[str], port_file: Path, port: int = 0) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, "-m", "vpbatch", "sim", "serve", "--port", str(port),
               "--port-file", str(port_file), *args]
        # Its own session: Ctrl-C reaches only the demo, which drains the sweep and then stops
        # the server itself (a server killed first would fail the requests being drained).
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True,
                                     start_new_session=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the server prints one line once it listens
        if not line.startswith("listening on "):
            self.stop()
            raise VPBatchError(
                f"the simulator did not start on port {port} (exit {self.proc.returncode}); "
                "run `vpbatch sim serve` by hand to see why"
            )
        self.url = line.split()[-1]
        self.port = int(port_file.read_text())

    @classmethod
    def start(cls, args: list[str], port_file: Path) -> SimProcess:
        """On the port the last run used if it is free, else on any free one.

        Job ids include the base URL, so a resumed demo must reach the server at the same
        address for its finished jobs to count as finished.
        """
        try:
            previous = int(port_file.read_text())
        except (OSError, ValueError):
            previous = 0
        if previous:
            try:
                return cls(args, port_file, previous)
            except VPBatchError:
                click.echo(f"port {previous} is taken: starting afresh on a free port "
                           "(finished jobs will be asked again)", err=True)
        return cls(args, port_file, 0)

    def stats(self) -> dict[str, Any]:
        """The server's counters (GET /stats), without the per-request detail."""
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=30) as r:
            doc: dict[str, Any] = json.load(r)
        return {k: v for k, v in doc.items() if k not in ("per_key", "accepted")}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def point_at(cfg: Config, url: str) -> int:
    """Give every model whose base_url is the placeholder the server's URL; how many."""
    n = 0
    for m in cfg.models:
        if m.base_url == SIM_URL:
            m.base_url = url
            n += 1
    if n == 0:
        raise ConfigError(f'{cfg.source}: no model has base_url = "{SIM_URL}"; nothing to demo')
    return n


@dataclass(slots=True)
class DemoResult:
    run_dir: Path
    seconds: float
    server: dict[str, Any]
    scores: Scores
    checks: dict[str, Any] = field(default_factory=dict)
    score_seconds: float = 0.0
    report_seconds: float | None = None  # None: not written (up to date, or switched off)
    trust: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # scores.json's
    replayed: list[str] = field(default_factory=list)  # the recorded models, by name


def _sweep(cfg: Config, run_dir: Path) -> Any:
    """Run (or resume) the sweep through the engine, with its live progress on stderr."""
    from vpbatch.sweep.engine import run_sweep

    summary = run_sweep(cfg, run_dir)
    if summary.interrupted:
        raise VPBatchError(f"stopped by {summary.interrupted}; run `make run` again to resume")
    return summary


def run_demo(
    config: Path, run_dir: Path, *, server_args: list[str], fresh: bool = False,
    report: bool = True,
) -> DemoResult:
    """Serve, sweep, score, check; the server is stopped whatever happens."""
    from vpbatch.benchmark.dataset import load_dataset
    from vpbatch.benchmark.ensure import ensure_data
    from vpbatch.scoring.scores_file import score_run

    cfg = load_config(config, check_urls=False)  # point_at fills in ${SIM_URL}
    # A fresh clone has no data yet: fetch the core files and the recordings the config
    # replays (a missing or unreachable dataset fails here, before a server starts).
    replayed = [m.model.removeprefix("replay:") for m in cfg.models
                if m.model.startswith("replay:")]
    cfg.run.data = str(ensure_data(cfg.run.data, models=replayed))
    load_dataset(cfg.run.data)
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    server = SimProcess.start([*server_args, "--data", cfg.run.data], run_dir / "sim.port")
    try:
        point_at(cfg, server.url)
        click.echo(f"simulator listening on {server.url}; sweeping {len(cfg.models)} models")
        _sweep(cfg, run_dir)
        stats = server.stats()
    finally:
        server.stop()
    t1 = time.perf_counter()
    doc, scores, _ = score_run(run_dir, ScoreOptions(), data=cfg.run.data)
    result = DemoResult(run_dir, t1 - t0, stats, scores, trust=trust_of(doc),
                        replayed=[m.name for m in cfg.models if m.model.startswith("replay:")])
    result.checks = sim_checks(cfg, scores)
    result.score_seconds = time.perf_counter() - t1
    if report and not _report_is_current(run_dir):
        try:
            from vpbatch.report import write_report
        except ImportError:  # the report module is optional for the demo's own checks
            pass
        else:
            t2 = time.perf_counter()
            write_report(run_dir, data=Path(cfg.run.data) if cfg.run.data else None)
            result.report_seconds = time.perf_counter() - t2
    return result


def _report_is_current(run_dir: Path) -> bool:
    """Whether report.html was written after the log's last line (a resume that sent nothing)."""
    from vpbatch.log.rundir import RunDir

    rd = RunDir.at(run_dir)
    try:
        return rd.report_html_path.stat().st_mtime >= rd.log_path.stat().st_mtime
    except OSError:
        return False


def _pvq(scores: Scores, model: str, cond: str) -> np.ndarray | None:
    if model not in scores.models or cond not in scores.conditions:
        return None
    row = scores.score["pvq"][scores.models.index(model), scores.conditions.index(cond)]
    return None if np.isnan(row).all() else row


def sim_checks(cfg: Config, scores: Scores) -> dict[str, Any]:
    """For each simulated model: does its known profile, steering and persona shift come back?"""
    from vpbatch.sim.respondent import Respondent

    out: dict[str, Any] = {}
    for m in cfg.models:
        if not m.model.startswith("sim"):
            continue
        data = Path(cfg.run.data) if cfg.run.data else None
        who = Respondent.from_settings(dict(m.sim), model=m.model, data=data)
        vanilla = _pvq(scores, m.name, VANILLA)
        if vanilla is None:
            continue
        truth = np.array([who.profile[d] for d in PVQ])
        check: dict[str, Any] = {"spearman": float(spearmanr(truth, vanilla).statistic)}
        steer = [_pvq(scores, m.name, steer_condition(d)) for d in PVQ]
        if all(s is not None for s in steer):
            matrix = np.array([s - vanilla for s in steer if s is not None])
            check["steering_diagonal"] = int((matrix.argmax(1) == np.arange(len(PVQ))).sum())
        agree = total = 0
        for cond in scores.conditions:
            row = _pvq(scores, m.name, cond) if cond.startswith(PERSONA_PREFIX) else None
            if row is None:
                continue
            for dim, shift in who.persona_shift(cond).items():
                if shift:
                    total += 1
                    agree += int(np.sign(row - vanilla)[PVQ.index(dim)] == np.sign(shift))
        if total:
            check["persona_signs"] = (agree, total)
        out[m.name] = check
    return out


def paper_agreement(scores: Scores, table2: Path | None) -> tuple[int, list[str]]:
    """Table 2 cells checked, and those off the printed 2 decimals ("model Value a vs b")."""
    if table2 is None or not table2.exists():
        return 0, []
    table = orjson.loads(table2.read_bytes())
    n, off = 0, []
    for row in table.values():
        got = _pvq(scores, row["file_model"], VANILLA)
        if got is None:
            continue
        for dim, value in zip(PVQ, got, strict=True):
            n += 1
            if abs(value - row[dim]) > 0.005 + 1e-9:
                off.append(f"{row['file_model']} {dim} {value:.2f} vs {row[dim]:.2f}"
                           + (" (documented)" if (row["file_model"], dim) in DOCUMENTED_OFF
                              else ""))
    return n, off


def paper_table2() -> Path:
    """Table 2 as data: $VPBATCH_PAPER's, else ../shared/paper's, else the copy shipped inside
    the package (so a fresh clone's `make run` checks it too)."""
    env = os.environ.get("VPBATCH_PAPER")
    if env:
        return Path(env) / "table2_values.json"
    p = REPO.parent / "shared" / "paper" / "table2_values.json"
    # VPBATCH_NO_SHARED: act as a clone without ../shared (the fresh-clone check in .ci/run).
    return p if p.exists() and not os.environ.get("VPBATCH_NO_SHARED") else SHIPPED_TABLE2


def summary(result: DemoResult, table2: Path | None) -> list[str]:
    """The lines `make run` prints after the sweep."""
    from vpbatch.scoring.scores_file import format_table

    st = result.server
    report = "" if result.report_seconds is None else f", report {result.report_seconds:.1f} s"
    lines = [
        f"sweep {result.seconds:.1f} s, scoring {result.score_seconds:.1f} s{report}; the "
        f"simulator answered {st.get('ok', 0):,} of {st.get('requests', 0):,} requests "
        f"({st.get('sent_429', 0)} 429s, injected faults {st.get('faults', {})}; server CPU "
        f"{st.get('cpu_seconds', 0.0):.0f} s)",
        "",
        "Centred PVQ scores, vanilla (the paper's default rule):",
        format_table(_vanilla_only(result.scores)),
    ]
    n, off = paper_agreement(result.scores, table2)
    if n:
        lines += ["", f"Replayed models vs the paper's Table 2: {n - len(off)}/{n} cells match "
                  "to the printed 2 decimals" + (f"; off: {'; '.join(off)}" if off else "")]
        if any("(documented)" in o for o in off):
            lines.append("  (documented: the authors' averaging dropped item (2011, 1), whose "
                         "v1 answer failed; see docs/guides/scoring.md, 'Reproducing the paper')")
    lines += trust_lines(result)
    for name, c in result.checks.items():
        lines += ["", f"Simulated respondent {name}: known profile recovered with Spearman "
                  f"{c['spearman']:.3f} (needs >= 0.9)"]
        if "steering_diagonal" in c:
            lines.append(f"  steering: row maximum on the diagonal for {c['steering_diagonal']}"
                         "/10 values (needs >= 8)")
        if "persona_signs" in c:
            a, t = c["persona_signs"]
            lines.append(f"  personas: {a}/{t} simulated shifts come back with their sign")
    rd = result.run_dir
    lines += ["", f"results: {rd}/  (scores.json, log.jsonl, report.md, report.html)"]
    return lines


def trust_lines(result: DemoResult) -> list[str]:
    """The trust panel's verdict counts on the recorded models, then every vanilla verdict."""
    vanilla = {m: {VANILLA: per[VANILLA]} for m, per in result.trust.items() if VANILLA in per}
    if not vanilla:
        return []
    lines = [""]
    recorded = {m: v for m, v in vanilla.items() if m in result.replayed}
    if recorded:
        counts = verdict_counts(recorded)
        lines.append(f"Can these profiles be trusted? Of the {len(recorded)} recorded models' "
                     f"vanilla profiles, {counts[REPLICATES]} replicate across answer order and "
                     f"wording, {counts[WEAK]} are weak and {counts[NOT_REPLICATING]} do not "
                     "replicate" + (f" ({counts[NOT_MEASURED]} not measured)"
                                    if counts[NOT_MEASURED] else "") + " (docs/guides/trust.md)")
    return [*lines, format_trust(vanilla)]


def _vanilla_only(s: Scores) -> Scores:
    if VANILLA not in s.conditions:
        return s
    ci = s.conditions.index(VANILLA)

    def pick(d: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: v[:, ci : ci + 1] for k, v in d.items()}

    return Scores(s.models, [VANILLA], pick(s.score), pick(s.raw), pick(s.n_items))


def passed(result: DemoResult) -> bool:
    """What the demo must show: every simulated profile back out with Spearman >= 0.9."""
    return all(c["spearman"] >= 0.9 and c.get("steering_diagonal", 10) >= 8
               for c in result.checks.values()) and bool(result.checks)


@click.command()
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path),
              default=DEFAULT_CONFIG, show_default=True)
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path),
              default=REPO / "runs" / "demo", show_default=True)
@click.option("--fresh", is_flag=True, help="Delete the run dir first (no resume).")
@click.option("--faults", default=0.002, show_default=True,
              help="Per-attempt probability of each injected fault (429, 500, drop).")
@click.option("--no-report", is_flag=True, help="Skip report.md / report.html.")
def demo(config: Path, run_dir: Path, fresh: bool, faults: float, no_report: bool) -> None:
    """Run the demo sweep against the simulator and print what came out."""
    server_args = ["--fault-429", str(faults), "--retry-after", "0.2",
                   "--fault-500", str(faults), "--fault-drop", str(faults)]
    result = run_demo(config, run_dir, server_args=server_args, fresh=fresh,
                      report=not no_report)
    click.echo("\n".join(summary(result, paper_table2())))
    if not passed(result):
        raise VPBatchError("the simulated respondent's profile did not come back out (see above)")


def main(argv: list[str] | None = None) -> None:
    """`python -m vpbatch.demos.demo`: one clear line on a user error, not a traceback."""
    try:
        demo.main(args=argv, prog_name="python -m vpbatch.demos.demo", standalone_mode=False)
    except VPBatchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
