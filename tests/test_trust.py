"""The trust panel: recorded models against a short independent implementation of issue 18's
definitions, and the simulator's biases recovered end to end through a real sweep."""

from __future__ import annotations

import json
import lzma
import math
import re
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from click.testing import CliRunner
from scipy.stats import spearmanr

import vpbatch
from vpbatch.benchmark import layout
from vpbatch.benchmark.dataset import Dataset, load_dataset
from vpbatch.benchmark.prompts import item_prompt
from vpbatch.cli import cli
from vpbatch.errors import ConfigError
from vpbatch.scoring.cube import RatingCube
from vpbatch.scoring.scorer import ScoreOptions
from vpbatch.scoring.trust import (
    NOT_MEASURED,
    NOT_REPLICATING,
    REPLICATES,
    WEAK,
    Trust,
    format_trust,
    spearman,
    trust_panel,
    verdicts,
)
from vpbatch.sim.respondent import Respondent
from vpbatch.transport.records import RequestParams

VERSIONS = ("v1", "v1_reversed", "v2", "v2_reversed", "v3", "v3_reversed")
CHECKED = ("gpt-3.5-turbo", "gpt-4o-mini-2024-07-18", "claude-3-5-haiku-20241022",
           "llama-3.1-8b-instruct")


# --- an independent implementation, from the raw answer files ----------------------------


def _raw_ratings(data_dir: Path, model: str) -> dict[str, dict[tuple[int, int], int]]:
    """version -> (portrait_id, option_id) -> the file's numeric_response, where 1..6."""
    out: dict[str, dict[tuple[int, int], int]] = {}
    for version in VERSIONS:
        # either layout: .json as upstream and the fetch have it, .json.xz as ../shared has it
        (path,) = (data_dir / layout.OUTPUTS).glob(f"*/{model}_{version}_results.json*")
        raw = path.read_bytes()
        rows = json.loads(lzma.decompress(raw) if path.suffix == ".xz" else raw)
        out[version] = {(int(r["portrait_id"]), int(r["option_id"])): int(r["numeric_response"])
                        for r in rows if r.get("numeric_response") in (1, 2, 3, 4, 5, 6)}
    return out


def _rho(a: list[float], b: list[float]) -> float:
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if not (math.isnan(x) or math.isnan(y))]
    if len(pairs) < 3 or len({x for x, _ in pairs}) < 2 or len({y for _, y in pairs}) < 2:
        return math.nan
    return float(spearmanr([x for x, _ in pairs], [y for _, y in pairs])[0])


def _mean(xs: list[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return statistics.fmean(xs) if xs else math.nan


def _profile(ds: Dataset, ratings: dict[str, dict[tuple[int, int], int]],
             versions: list[str]) -> list[float]:
    """The paper rule's centred PVQ scores (r > 0.3, p < 0.05) from these versions alone."""
    items = list(zip(ds.portrait_id.tolist(), ds.option_id.tolist(), strict=True))
    means = {}
    for key in items:
        got = [ratings[v][key] for v in versions if key in ratings[v]]
        if got:
            means[key] = statistics.fmean(got)
    corr, pval = np.asarray(ds.corr["pvq"]), np.asarray(ds.pval["pvq"])
    used = [(i, key) for i, key in enumerate(items) if key in means]
    counts = [(corr[i] > 0.3) & (pval[i] < 0.05) for i, _ in used]
    family = statistics.fmean(means[key] for (i, key), c in zip(used, counts, strict=True)
                              if c.any())
    return [statistics.fmean(means[key] for (i, key), c in zip(used, counts, strict=True)
                             if c[d]) - family for d in range(corr.shape[1])]


def _by_hand(ds: Dataset, r: dict[str, dict[tuple[int, int], int]]) -> dict[str, float]:
    bias, item_rho, prof_rho = [], [], []
    for k in ("v1", "v2", "v3"):
        a, b = r[k], r[k + "_reversed"]
        both = sorted(set(a) & set(b))
        bias.append(statistics.fmean((a[i] - b[i]) / 5 for i in both))
        item_rho.append(_rho([a[i] for i in both], [b[i] for i in both]))
        prof_rho.append(_rho(_profile(ds, r, [k]), _profile(ds, r, [k + "_reversed"])))
    words = {k: _profile(ds, r, [k, k + "_reversed"]) for k in ("v1", "v2", "v3")}
    wording = [_rho(words[a], words[b]) for a, b in (("v1", "v2"), ("v1", "v3"), ("v2", "v3"))]
    pooled = [x for v in VERSIONS for x in r[v].values()]
    return {"order_bias": _mean(bias), "order_item_rho": _mean(item_rho),
            "order_profile_rho": _mean(prof_rho), "wording_profile_rho": _mean(wording),
            "straightlining": max(pooled.count(k) for k in range(1, 7)) / len(pooled),
            "rated_share": len(pooled) / (len(VERSIONS) * ds.n_items)}


@pytest.fixture(scope="module")
def official_trust(official_cube: RatingCube, data_dir: Path) -> Trust:
    return trust_panel(official_cube, load_dataset(data_dir), n_boot=200, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("model", CHECKED)
def test_recorded_models_match_the_definitions_computed_from_the_raw_files(
    official_trust: Trust, data_dir: Path, model: str
) -> None:
    ds = load_dataset(data_dir)
    want = _by_hand(ds, _raw_ratings(data_dir, model))
    got = official_trust.get(model, "vanilla")
    for name, value in want.items():
        assert got[name] == pytest.approx(value, abs=1e-9), name


@pytest.mark.slow
def test_the_issues_hand_checks_hold_on_the_recorded_models(official_trust: Trust) -> None:
    def row(m: str) -> dict[str, Any]:
        return official_trust.get(m, "vanilla")
    assert row("gpt-3.5-turbo")["order_profile_rho"] == pytest.approx(-0.02, abs=0.005)
    assert row("gpt-4o-mini-2024-07-18")["order_bias"] == pytest.approx(1.25 / 5, abs=0.005)
    assert row("claude-3-5-haiku-20241022")["straightlining"] == pytest.approx(0.97, abs=0.005)
    for m in ("grok-2-1212", "deepseek-chat", "o3-mini-2025-01-31"):
        assert 0.935 <= row(m)["order_profile_rho"] <= 0.965
        assert row(m)["verdict"] == REPLICATES


@pytest.mark.slow
def test_profiles_that_replicate_have_narrower_intervals_than_those_that_do_not(
    official_trust: Trust
) -> None:
    width: dict[str, list[float]] = {REPLICATES: [], NOT_REPLICATING: []}
    for m, c in official_trust.rows():
        row = official_trust.get(m, c)
        for name in ("order_profile_rho", "wording_profile_rho"):
            assert row[f"{name}_ci_low"] <= row[f"{name}_ci_high"]
            if row["verdict"] in width:
                width[row["verdict"]].append(row[f"{name}_ci_high"] - row[f"{name}_ci_low"])
    assert statistics.median(width[REPLICATES]) < statistics.median(width[NOT_REPLICATING])


# --- definitions on small arrays -------------------------------------------------------


def test_spearman_is_undefined_below_three_pairs_or_on_a_constant_side() -> None:
    nan = math.nan
    a = np.array([[1.0, 2.0, nan, nan], [1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0]])
    b = np.array([[2.0, 1.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0]])
    got = spearman(a, b)
    assert math.isnan(got[0]) and math.isnan(got[1])
    assert got[2] == pytest.approx(spearmanr(a[2], b[2])[0])


def test_verdicts_follow_the_two_thresholds_and_an_undefined_rho_fails() -> None:
    order = np.array([0.8, 0.8, 0.5, 0.3, math.nan, 0.9])
    wording = np.array([0.9, 0.6, 0.9, 0.9, 0.9, 0.9])
    asked = np.array([True] * 5 + [False])
    assert verdicts(order, wording, asked, asked).tolist() == [
        REPLICATES, WEAK, WEAK, NOT_REPLICATING, NOT_REPLICATING, NOT_MEASURED]
    assert verdicts(order, wording, asked, asked, 0.2, 0.5).tolist()[3] == WEAK


def test_a_failed_order_test_fails_even_when_the_wordings_were_not_asked() -> None:
    order, nan = np.array([0.1, 0.9]), np.array([math.nan, math.nan])
    asked, not_asked = np.array([True, True]), np.array([False, False])
    assert verdicts(order, nan, asked, not_asked).tolist() == [NOT_REPLICATING, NOT_MEASURED]


def test_thresholds_out_of_order_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="weak_min"):
        ScoreOptions(weak_min=0.8, replicate_min=0.7)


def test_score_output_names_the_weak_and_the_order_biased() -> None:
    rows = {"a": {"vanilla": {"verdict": REPLICATES, "order_bias": 0.01}},
            "b": {"vanilla": {"verdict": WEAK, "order_bias": -0.3},
                  "steer:Power": {"verdict": NOT_REPLICATING, "order_bias": None}}}
    text = format_trust(rows)
    assert "replicates (1)\n" in text
    assert "weak (1): b\n" in text
    assert "does not replicate (1): b [steer:Power]" in text
    assert text.endswith("b (-0.30)")


# --- the simulator's biases, through a real sweep --------------------------------------

SIM_CONFIG = """
[run]
name = "trust"
versions = ["v1", "v1_reversed", "v2", "v2_reversed", "v3", "v3_reversed"]

[[models]]
name = "clean"
provider = "sim"

[[models]]
name = "primacy"
provider = "sim"
sim = {primacy = 0.9}

[[models]]
name = "straightline"
provider = "sim"
sim = {straightline = 0.95}
"""


@pytest.fixture(scope="module")
def sim_trust(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict[str, Any]:
    cfg = tmp_path_factory.mktemp("trust") / "trust.toml"
    cfg.write_text(SIM_CONFIG)
    run_dir = cfg.parent / "run"
    vpbatch.run(cfg, run_dir, progress=False)
    result = CliRunner().invoke(cli, ["score", str(run_dir), "--boot", "50"])
    assert result.exit_code == 0, result.output
    doc = orjson.loads((run_dir / "scores.json").read_bytes())
    return {"models": doc["models"], "output": result.output, "run_dir": run_dir}


def test_a_clean_simulated_respondent_replicates_without_order_bias(
    sim_trust: dict[str, Any]
) -> None:
    row = sim_trust["models"]["clean"]["vanilla"]["trust"]
    assert row["verdict"] == REPLICATES
    assert abs(row["order_bias"]) <= 0.05
    assert row["rated_share"] == 1.0


def test_primacy_shows_as_order_bias(sim_trust: dict[str, Any]) -> None:
    row = sim_trust["models"]["primacy"]["vanilla"]["trust"]
    assert row["order_bias"] == pytest.approx(0.9, abs=0.05)


def test_a_straightlining_respondent_does_not_replicate(sim_trust: dict[str, Any]) -> None:
    row = sim_trust["models"]["straightline"]["vanilla"]["trust"]
    assert row["verdict"] == NOT_REPLICATING
    assert row["straightlining"] >= 0.95


def test_recency_picks_the_phrase_listed_last(data_dir: Path) -> None:
    ds = load_dataset(data_dir)
    sim = Respondent.from_settings({"recency": 1.0}, model="sim", data=data_dir)
    params = RequestParams(temperature=None, max_tokens=16, seed=None)
    for version, phrase in (("v1", "not like me at all"), ("v1_reversed", "very much like me")):
        msg = [{"role": "user", "content": item_prompt(ds, version, 0)}]
        assert sim.answer(msg, params).text == phrase


def test_biases_at_zero_leave_every_answer_as_it_was(data_dir: Path) -> None:
    ds = load_dataset(data_dir)
    plain = Respondent.from_settings({}, model="sim", data=data_dir)
    zero = Respondent.from_settings({"primacy": 0.0, "recency": 0.0, "straightline": 0.0},
                                    model="sim", data=data_dir)
    params = RequestParams(temperature=None, max_tokens=16, seed=None)
    for i in range(0, ds.n_items, 7):
        msg = [{"role": "user", "content": item_prompt(ds, "v2_reversed", i)}]
        assert zero.answer(msg, params) == plain.answer(msg, params)


def test_a_bias_outside_zero_to_one_is_a_config_error(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match="primacy"):
        Respondent.from_settings({"primacy": 1.5}, model="sim", data=data_dir)


def test_score_prints_the_verdicts_of_the_simulated_run(sim_trust: dict[str, Any]) -> None:
    out = sim_trust["output"]
    assert "replicates (" in out and "does not replicate (" in out
    assert "primacy (+0.8" in out or "primacy (+0.9" in out  # named among the order-biased


# --- where people see it: the report ---------------------------------------------------


@pytest.fixture(scope="module")
def sim_report(sim_trust: dict[str, Any], data_dir: Path) -> tuple[str, str]:
    from vpbatch.report import write_report

    md, html = write_report(sim_trust["run_dir"], data=data_dir, n_boot=50)
    return md.read_text(), html.read_text()


def test_every_overview_row_carries_its_verdict_badge(sim_report: tuple[str, str]) -> None:
    html = sim_report[1]
    overview = html.split('<section id="overview">', 1)[1].split("</section>", 1)[0]
    rows = re.findall(r'<div class="ovrow[^"]*"[^>]*><span[^>]*>([^<]+)(<b class="vb"[^>]*>'
                      r"([^<]+)</b>)?", overview)
    assert {name: verdict for name, _, verdict in rows} == {
        "clean": "replicates", "primacy": "weak", "straightline": "does not replicate"}


def test_the_trust_section_has_the_table_and_the_scatter_with_its_thresholds(
    sim_report: tuple[str, str]
) -> None:
    md, html = sim_report
    section = html.split('<section id="trust">', 1)[1].split("</section>", 1)[0]
    assert section.startswith("<h2>Can these profiles be trusted?</h2>")
    assert section.count('<div class="ttrow"') == 3
    assert 'href="#tts-4"' in section  # a heading sorts by order_profile_rho
    assert section.count("<circle") == 3
    assert "replicate_min = 0.7" in section and "weak_min = 0.4" in section
    table = md.split("## Can these profiles be trusted?", 1)[1].split("\n## ", 1)[0]
    assert "| straightline | does not replicate |" in table


def test_a_profile_chart_says_when_its_profile_does_not_replicate(
    sim_report: tuple[str, str]
) -> None:
    html = sim_report[1]
    titles = re.findall(r"<title>([^<]*: Schwartz[^<]*)</title>", html)
    flagged = [t for t in titles if "does not replicate" in t]
    assert flagged and all(t.startswith("straightline") for t in flagged)


LOCAL_LIKE = """
[run]
name = "local-like"
versions = ["v1", "v1_reversed"]

[[models]]
name = "noise"
provider = "sim"
sim = {b = 0.0, seed = 2}  # no latent profile at all: every answer is noise, the worst case
"""


def test_the_local_demo_reads_its_verdict_from_the_panel(tmp_path: Path) -> None:
    from vpbatch.demos.local_demo import trust_verdict

    cfg = tmp_path / "local.toml"
    cfg.write_text(LOCAL_LIKE)
    vpbatch.run(cfg, tmp_path / "run", progress=False)
    result = CliRunner().invoke(cli, ["score", str(tmp_path / "run"), "--boot", "20"])
    assert result.exit_code == 0, result.output
    line = trust_verdict(tmp_path / "run", "noise")
    row = orjson.loads((tmp_path / "run" / "scores.json").read_bytes())[
        "models"]["noise"]["vanilla"]["trust"]
    assert line.startswith(f"trust: {row['verdict']} (profile rho across answer order "
                           f"{row['order_profile_rho']:+.2f} [")
    assert row["verdict"] == NOT_REPLICATING  # one wording in both orders is enough to fail
    assert "across wordings n/a" in line
    assert "rated 100%" in line and f"order bias {row['order_bias']:+.2f}" in line


REPEATED = """
[run]
name = "repeated"
versions = ["v1", "v1_reversed", "v2", "v2_reversed"]
repeats = 2

[[models]]
name = "clean"
provider = "sim"
"""


def test_repeated_jobs_add_the_retest_fields(tmp_path: Path, data_dir: Path) -> None:
    from vpbatch.scoring.cube import cube_from_log

    cfg = tmp_path / "rep.toml"
    cfg.write_text(REPEATED)
    vpbatch.run(cfg, tmp_path / "run", progress=False)
    ds = load_dataset(data_dir)
    log = tmp_path / "run" / "log.jsonl"
    cube_from_log(log, ds)  # fills the cache; the panel below reads the cached cube
    row = trust_panel(cube_from_log(log, ds), ds, n_boot=0).get("clean", "vanilla")
    # The simulator answers a request the same way every time: a perfect retest.
    assert row["retest_item_rho"] == pytest.approx(1.0)
    assert row["retest_profile_rho"] == pytest.approx(1.0)
    assert row["rated_share"] == 1.0


def test_a_run_without_repeats_has_no_retest_fields(sim_trust: dict[str, Any]) -> None:
    assert "retest_item_rho" not in sim_trust["models"]["clean"]["vanilla"]["trust"]


def test_sim_serve_takes_the_biases_as_options(tmp_path: Path, data_dir: Path) -> None:
    import urllib.request

    from vpbatch.demos.demo import SimProcess

    ds = load_dataset(data_dir)
    server = SimProcess.start(["--straightline", "1", "--data", str(data_dir)],
                              tmp_path / "port")
    try:
        answers = set()
        for version, i in (("v1", 0), ("v1_reversed", 1), ("v3", 7)):
            body = orjson.dumps({"model": "sim", "messages": [
                {"role": "user", "content": item_prompt(ds, version, i)}]})
            req = urllib.request.Request(f"{server.url}/chat/completions", data=body,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as r:
                answers.add(orjson.loads(r.read())["choices"][0]["message"]["content"])
    finally:
        server.stop()
    assert len(answers) == 1  # one fixed phrase, whatever the item and the order
