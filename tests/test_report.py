"""`vpbatch report RUN`: report.md, a self-contained report.html and the CSV exports."""

from __future__ import annotations

import csv
import html as html_text
import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vpbatch.benchmark.dataset import load_dataset
from vpbatch.benchmark.dims import FAMILY_DIMS, PHRASES, PVQ, VERSIONS
from vpbatch.errors import LogError
from vpbatch.log.records import FAILED, Record, job_id
from vpbatch.report import CSV_NAME, CSV_VERSIONS_NAME, write_report
from vpbatch.report.common import NOTES, fmt, marks
from vpbatch.report.data import run_stats
from vpbatch.report.svg import label
from vpbatch.scoring.human import load_human_reference
from vpbatch.scoring.scorer import ScoreOptions, item_weights
from vpbatch.scoring.scores_file import score_run
from vpbatch.sweep.cost import Prices

PERSONAS = ("gender=male", "gender=female", "politics=left-wing", "politics=right-wing",
            "religion=atheist")
PHRASE_OF = {v: k for k, v in PHRASES.items()}
SECRET = "sk-test-0123456789abcdef"
MODELS = ("alpha-7b", "beta-chat")
SECTIONS = {"profiles": "1. Value profiles", "higher": "2. Higher-order values and Big Five",
            "humans": "3. Among the human raters",
            "personas": "4. Persona deltas beside the humans", "steering": "5. Value steering",
            "versions": "6. Prompt-version sensitivity",
            "reliability": "7. Reliability (Cronbach's alpha)", "conditions": "8. All conditions",
            "health": "9. Run health"}


def make_run(
    root: Path,
    data_dir: Path,
    *,
    models: tuple[str, ...] = ("alpha-7b", "beta-chat"),
    personas: tuple[str, ...] = PERSONAS,
    steer: tuple[str, ...] = PVQ,
    versions: tuple[str, ...] = VERSIONS[:3],
    seed: int = 0,
    batch: tuple[str, ...] = (),
) -> Path:
    """A run dir as `vpbatch run` leaves it: config.toml and a log.jsonl of real Records.

    Answers follow a latent profile per model (steering adds +1 to its value); every 97th job
    failed for good, every 89th came back unparseable, every 50th needed a second attempt.
    """
    ds = load_dataset(data_dir)
    rng = np.random.default_rng(seed)
    w = (np.asarray(item_weights(ds, "pvq")) > 0).astype(np.float64)
    w /= np.maximum(w.sum(axis=1, keepdims=True), 1.0)
    conds = ["vanilla", *(f"persona:{p}" for p in personas), *(f"steer:{d}" for d in steer)]
    lines, n = [], 0
    for model in models:
        base = rng.normal(0, 0.6, 10)
        for cond in conds:
            prof = base + (rng.normal(0, 0.3, 10) if cond.startswith("persona:") else 0)
            if cond.startswith("steer:"):
                prof[PVQ.index(cond.removeprefix("steer:"))] += 1.0
            lin = 3.5 + 1.5 * w @ prof
            for version in versions:
                ratings = np.clip(np.round(lin + rng.normal(0, 0.7, len(lin))), 1, 6)
                for i, (pid, oid) in enumerate(zip(ds.portrait_id, ds.option_id, strict=True)):
                    n += 1
                    key = job_id({"m": model, "c": cond, "v": version, "p": int(pid),
                                  "o": int(oid)})
                    rec = Record(key, model, cond, version, int(pid), int(oid),
                                 usage={"prompt_tokens": 300, "completion_tokens": 4},
                                 latency_ms=200.0, attempts=2 if n % 50 == 0 else 1)
                    if n % 97 == 0:
                        rec.status, rec.error_kind, rec.usage = FAILED, "permanent", None
                        rec.error = "HTTP 400: content filter"
                    elif n % 89 == 0:
                        rec.raw = "I would rather not say."
                    else:
                        rec.rating = int(ratings[i])
                        rec.raw = PHRASE_OF[rec.rating].capitalize()
                    lines.append(rec.to_json())
    root.mkdir(parents=True, exist_ok=True)
    (root / "log.jsonl").write_bytes(b"".join(lines))
    model_tables = "".join(
        f'[[models]]\nname = "{m}"\nprovider = "sim"\nmodel = "sim-{m}"\n'
        f'api_key_env = "VPBATCH_TEST_KEY"\nprice_in = 0.5\nprice_out = 2.0\n'
        + ('mode = "batch"\n' if m in batch else "") + "\n" for m in models)
    (root / "config.toml").write_text(
        f'[run]\nname = "report-test"\nversions = {list(versions)!r}\n\n{model_tables}'
        f"[grids]\npersonas = {list(personas)!r}\nsteering = {list(steer)!r}\n".replace("'", '"'),
        encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    root = make_run(tmp_path_factory.mktemp("report") / "run", data_dir)
    write_report(root, data=data_dir, n_boot=200)
    return root


@pytest.fixture(scope="module")
def md(run: Path) -> str:
    return (run / "report.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def html(run: Path) -> str:
    return (run / "report.html").read_text(encoding="utf-8")


def _html_tables(html: str, section: str) -> list[list[list[str]]]:
    """Body rows (cell texts) of every table in one `<section id=...>` of report.html."""
    body = html.split(f'<section id="{section}">', 1)[1].split("</section>", 1)[0]
    tables = re.findall(r"<tbody>(.*?)</tbody>", body)
    return [[[html_text.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
             for row in re.findall(r"<tr>(.*?)</tr>", t)] for t in tables]


def _unmarked(rows: list[list[str]]) -> list[list[str]]:
    return [[c.rstrip("⋆†") for c in r] for r in rows]


def _md_table(md: str, heading: str) -> list[list[str]]:
    """Body rows of the first Markdown table after a heading."""
    lines = md.split(heading, 1)[1].splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("|"))
    block = list(itertools.takewhile(lambda ln: ln.startswith("|"), lines[start:]))
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in block[2:]]


def test_profile_tables_show_the_scores_that_vpbatch_score_writes(
    run: Path, md: str, html: str, data_dir: Path
) -> None:
    doc, _, _ = score_run(run, ScoreOptions(), data=str(data_dir))  # RUN/scores.json
    want = {fam: [[m, *(fmt(doc["models"][m]["vanilla"][fam][d]["score"])
                        for d in FAMILY_DIMS[fam])] for m in MODELS]
            for fam in ("pvq", "higher_pvq", "bfi")}
    assert _unmarked(_md_table(md, "## 1. Value profiles")) == want["pvq"]
    assert _unmarked(_md_table(md, "### Higher-order values")) == want["higher_pvq"]
    assert _unmarked(_md_table(md, "### Big Five traits")) == want["bfi"]
    assert [_unmarked(t) for t in _html_tables(html, "profiles")[:1]] == [want["pvq"]]
    assert [_unmarked(t) for t in _html_tables(html, "higher")[:2]] == [
        want["higher_pvq"], want["bfi"]]


def test_html_needs_no_network(html: str) -> None:
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html
    refs = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html)
    assert refs and all(r.startswith(("#", "data:")) for r in refs), refs
    assert not re.search(r"url\((?!\s*['\"]?data:)", html)
    assert "@import" not in html


def test_every_section_opens_with_what_it_means(md: str, html: str) -> None:
    for key, title in SECTIONS.items():
        md_section = md.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
        assert NOTES[key] in md_section, title
        html_section = html.split(f'<section id="{key}">', 1)[1].split("</section>", 1)[0]
        assert html_section.startswith(f"<h2>{html_text.escape(title)}")
        assert f'<p class="note">{html_text.escape(NOTES[key])}</p>' in html_section, title


def test_profile_table_marks_each_models_max_and_min(md: str) -> None:
    rows = _md_table(md, "## 1. Value profiles")
    assert [r[0] for r in rows] == ["alpha-7b", "beta-chat"]
    for r in rows:
        cells = r[1:]
        assert len(cells) == 10
        values = [float(c.rstrip("⋆†")) for c in cells]
        assert sum("⋆" in c for c in cells) == 1 and sum("†" in c for c in cells) == 1
        assert "⋆" in cells[int(np.argmax(values))] and "†" in cells[int(np.argmin(values))]


def test_numbers_are_printed_with_two_decimals(md: str) -> None:
    for r in _md_table(md, "## 1. Value profiles"):
        assert all(re.fullmatch(r"[+-]\d+\.\d\d[⋆†]?", c) for c in r[1:]), r
    assert fmt(-0.004) == "+0.00" and fmt(float("nan")) == "n/a" and fmt(1.239) == "+1.24"


def _svg(html: str, title: str) -> str:
    (svg,) = [s for s in html.split("<svg")[1:] if f"<title>{html_text.escape(title)}</title>" in s]
    return svg


def test_html_draws_each_models_profile_charts(html: str) -> None:
    for m in MODELS:
        for family in ("Schwartz values", "Higher-order values", "Big Five traits"):
            svg = _svg(html, f"{m}: {family}")
            assert "<rect" in svg  # a bar per dimension, each with its whisker


def test_html_heatmap_outlines_the_steered_values_with_the_numbers_of_the_md(
    md: str, html: str
) -> None:
    steering = md.split("## 5. Value steering", 1)[1]
    for m in MODELS:
        bold = [next(c for c in r[1:] if c.startswith("**")).strip("*")
                for r in _md_table(steering, f"### {m}")]
        svg = _svg(html, f"{m}: steered − vanilla")
        cells = {(float(x), float(y)): (row, col, v) for x, y, row, col, v in re.findall(
            r'<rect class="cell" x="([\d.]+)" y="([\d.]+)"[^>]*><title>'
            r"steered ([^,]+), measured ([^:]+): ([^<]+)</title>", svg)}
        assert len(cells) == 100
        outlined = [cells[float(x) - 1.5, float(y) - 1.5] for x, y in
                    re.findall(r'<rect class="diag" x="([\d.]+)" y="([\d.]+)"', svg)]
        assert [(row, col) for row, col, _ in outlined] == [(label(d), label(d)) for d in PVQ]
        assert [v for _, _, v in outlined] == bold


def test_persona_deltas_stand_beside_the_human_ones(md: str) -> None:
    male = load_human_reference()["gender"].row("Male")
    assert "| humans: Male | " + " | ".join(fmt(float(v)) for v in male) + " |" in md
    assert "exaggeration (Male − Female)" in md
    assert "exaggeration (Left-wing − Right-wing)" in md
    assert "Other personas (no human reference)" in md  # religion has no ESS row


def test_steering_summary_counts_rows_where_the_asked_for_value_moved_most(md: str) -> None:
    rows = _md_table(md, "## 5. Value steering")
    assert [r[:3] for r in rows] == [["alpha-7b", "10", "10 of 10"],
                                     ["beta-chat", "10", "10 of 10"]]


def test_steering_table_bolds_the_diagonal(md: str) -> None:
    rows = _md_table(md.split("## 5. Value steering", 1)[1], "### alpha-7b")
    assert len(rows) == 10
    for i, r in enumerate(rows):
        assert [k for k, c in enumerate(r[1:]) if c.startswith("**")] == [i]


def test_run_health_counts_failures_retries_tokens_and_cost(md: str, run: Path) -> None:
    lines = (run / "log.jsonl").read_bytes().count(b"\n")
    per_model = lines // 2
    (alpha,) = [r for r in _md_table(md, "### Failures, retries, tokens, cost")
                if r[0] == "alpha-7b"]
    failed = sum(1 for n in range(1, per_model + 1) if n % 97 == 0)
    unparseable = sum(1 for n in range(1, per_model + 1) if n % 89 == 0 and n % 97)
    assert alpha[1:5] == [str(per_model), str(per_model - failed - unparseable),
                          str(unparseable), str(failed)]
    assert alpha[5] == f"HTTP 400 Bad Request: content filter ×{failed}"  # not "permanent"
    assert alpha[6] == str(per_model // 50)
    prompt, completion = 300 * (per_model - failed), 4 * (per_model - failed)
    assert alpha[7:9] == [f"{prompt:,}", f"{completion:,}"]
    assert alpha[10] == f"${(prompt * 0.5 + completion * 2.0) / 1e6:.2f}"


def test_a_batch_mode_models_cost_is_the_discounted_price(tmp_path: Path,
                                                        data_dir: Path) -> None:
    run = make_run(tmp_path / "run", data_dir, models=("online-m", "batch-m"), steer=(),
                   personas=(), versions=("v1",), batch=("batch-m",))
    md_path, html_path = write_report(run, data=data_dir, n_boot=20)
    rows = {r[0]: r for r in _md_table(md_path.read_text(encoding="utf-8"),
                                       "### Failures, retries, tokens, cost")}
    health = html_path.read_text(encoding="utf-8").split("Failures, retries, tokens, cost", 1)[1]
    for model, discount in (("online-m", 1.0), ("batch-m", 0.5)):  # batch APIs bill half
        prompt, completion = (int(rows[model][k].replace(",", "")) for k in (7, 8))
        cost = f"${(prompt * 0.5 + completion * 2.0) / 1e6 * discount:.2f}"
        assert rows[model][10] == cost
        html_row = re.search(rf"<tr><td>{model}</td>(.*?)</tr>", health)
        assert html_row is not None and html_row[1].endswith(f">{cost}</td>")
    assert rows["batch-m"][10] != rows["online-m"][10]


def test_persona_summary_gives_r_and_exaggeration_per_group(md: str) -> None:
    header = md.split("### Summary: models against the humans", 1)[1].split("\n")[2]
    assert "Gender: r" in header and "Political orientation: exaggeration" in header
    rows = _md_table(md, "### Summary: models against the humans")
    assert [r[0] for r in rows] == ["alpha-7b", "beta-chat"]
    assert all(re.fullmatch(r"[+-]?\d\.\d\d", c) for r in rows for c in r[1:]), rows


def test_health_ends_with_a_total_row(md: str) -> None:
    rows = _md_table(md, "### Failures, retries, tokens, cost")
    total, models = rows[-1], rows[:-1]
    assert total[0] == "total"
    assert int(total[1]) == sum(int(r[1]) for r in models)
    cost = sum(float(r[10].lstrip("$")) for r in models)  # each rounded to the cent
    assert float(total[10].lstrip("$")) == pytest.approx(cost, abs=0.011)


def test_parse_audit_counts_the_answers_each_parser_took(md: str, run: Path) -> None:
    per_model = (run / "log.jsonl").read_bytes().count(b"\n") // 2
    failed = sum(1 for n in range(1, per_model + 1) if n % 97 == 0)
    unparseable = sum(1 for n in range(1, per_model + 1) if n % 89 == 0 and n % 97)
    (alpha,) = [r for r in _md_table(md, "### Parse audit") if r[0] == "alpha-7b"]
    parsed = per_model - failed - unparseable  # both parsers take the scale phrases alike
    assert alpha == ["alpha-7b", str(per_model - failed), str(failed), str(parsed), str(parsed),
                     "0", f"no option ×{unparseable}", "—"]


def test_long_csv_has_one_row_per_model_condition_dimension(run: Path, md: str) -> None:
    with open(run / CSV_NAME, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    n_conditions = 1 + len(PERSONAS) + len(PVQ)
    assert len(rows) == 2 * n_conditions * (10 + 4 + 5)
    assert set(rows[0]) >= {"model", "condition", "family", "dimension", "score", "ci_low",
                            "ci_high", "delta", "version_spread"}
    vanilla = [r for r in rows if r["condition"] == "vanilla"]
    assert all(r["delta"] == "0.000000" for r in vanilla)
    for r in rows[:50]:
        assert float(r["ci_low"]) <= float(r["score"]) <= float(r["ci_high"])
    pvq = {(r["model"], r["dimension"]): float(r["score"]) for r in vanilla
           if r["family"] == "pvq"}
    assert _unmarked(_md_table(md, "## 1. Value profiles")) == [
        [m, *(fmt(pvq[m, d]) for d in PVQ)] for m in MODELS]


def test_version_csv_holds_the_scores_of_each_version_table(run: Path, md: str) -> None:
    with open(run / CSV_VERSIONS_NAME, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {r["version"] for r in rows} == set(VERSIONS[:3])
    for m in MODELS:
        score = {(r["version"], r["dimension"]): float(r["score"]) for r in rows
                 if (r["model"], r["condition"], r["family"]) == (m, "vanilla", "pvq")}
        shown = _md_table(md, f"### {m}: each version")[:3]
        assert shown == [[v, *(fmt(score[v, d]) for d in PVQ)] for v in VERSIONS[:3]]


def test_report_command_runs_end_to_end_and_keeps_keys_out(tmp_path: Path,
                                                           data_dir: Path) -> None:
    root = make_run(tmp_path / "run", data_dir, models=("solo",), personas=(), steer=(),
                    versions=("v1", "v2"))
    env = {**os.environ, "VPBATCH_TEST_KEY": SECRET, "VPBATCH_DATA": str(data_dir)}
    proc = subprocess.run([sys.executable, "-m", "vpbatch", "report", str(root), "--boot", "50"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout
    md = (root / "report.md").read_text(encoding="utf-8")
    assert "No persona conditions in this run." in md
    assert "No steering conditions in this run." in md
    for f in root.iterdir():
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f.name


def test_report_on_a_dir_that_is_not_a_run_says_so(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "vpbatch", "report", str(tmp_path / "nope")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_health_counts_each_job_once_as_the_log_dedupes_it(tmp_path: Path) -> None:
    def rec(jid: str, status: str = "ok", error: str | None = None) -> bytes:
        r = Record(jid, "m", "vanilla", "v1", 1001, 1, status=status, raw="Like me",
                   rating=5 if status == "ok" else None, error_kind=error,
                   usage={"prompt_tokens": 10, "completion_tokens": 1})
        return r.to_json()

    log = tmp_path / "log.jsonl"
    log.write_bytes(rec("a", FAILED, "transient") + rec("a") + rec("b") + rec("b")
                    + rec("c", FAILED, "transient") + rec("c", FAILED, "permanent")
                    + b'{"job_id": "torn')
    stats, audit = run_stats(log, {"m": Prices(1.0, None)})
    st = stats["m"]
    assert (st.jobs, st.ok, st.failed, st.lines) == (3, 2, 1, 6)
    assert dict(st.failure_reasons) == {"permanent": 1}
    assert st.prompt_tokens == 60 and st.cost_usd == pytest.approx(60 / 1e6)
    assert audit["m"].n == 2 and audit["m"].n_failed == 1


def test_models_without_personas_are_left_out_of_the_persona_section(tmp_path: Path,
                                                                     data_dir: Path) -> None:
    one = make_run(tmp_path / "one", data_dir, models=("with-personas",), steer=(),
                   versions=("v1", "v2"), personas=("gender=male", "gender=female"))
    two = make_run(tmp_path / "two", data_dir, models=("vanilla-only",), steer=(),
                   versions=("v1", "v2"), personas=())
    with open(one / "log.jsonl", "ab") as f:
        f.write((two / "log.jsonl").read_bytes())
    md_path, _ = write_report(one, data=data_dir, n_boot=20)
    personas = md_path.read_text(encoding="utf-8").split("## 4.", 1)[1].split("## 5.", 1)[0]
    assert "### with-personas" in personas and "vanilla-only" not in personas
    conditions = md_path.read_text(encoding="utf-8").split("## 8.", 1)[1]
    only = conditions.split("### vanilla-only", 1)[1].split("###", 1)[0]
    assert "persona:" not in only


def test_a_flat_profile_has_no_highest_or_lowest_mark() -> None:
    assert marks([0.0, 0.0, 0.0]) == ["", "", ""]
    assert marks([0.1, float("nan"), -0.2]) == ["⋆", "", "†"]


def test_an_empty_log_is_refused_with_what_to_do(tmp_path: Path, data_dir: Path) -> None:
    (tmp_path / "log.jsonl").write_bytes(b"")
    with pytest.raises(LogError, match="no finished jobs yet"):
        write_report(tmp_path, data=data_dir, n_boot=0)


def test_a_model_whose_every_job_failed_is_reported_not_dropped(tmp_path: Path,
                                                                data_dir: Path) -> None:
    ds = load_dataset(data_dir)
    ids = list(zip(ds.portrait_id.tolist(), ds.option_id.tolist(), strict=True))
    lines = [Record(f"d{i}", "dead", "vanilla", "v1", p, o, status=FAILED,
                    error_kind="permanent", error="HTTP 401").to_json()
             for i, (p, o) in enumerate(ids[:5])]
    lines += [Record(f"k{i}", "alive", "vanilla", "v1", p, o, raw="Like me",
                     rating=5 + i % 2).to_json() for i, (p, o) in enumerate(ids)]
    (tmp_path / "log.jsonl").write_bytes(b"".join(lines))
    md_path, _ = write_report(tmp_path, data=data_dir, n_boot=10)
    md = md_path.read_text(encoding="utf-8")
    assert "| dead | " + " | ".join(["n/a"] * 10) + " |" in md
    (dead,) = [r for r in _md_table(md, "### Failures, retries") if r[0] == "dead"]
    assert dead[1:6] == ["5", "0", "0", "5", "HTTP 401 Unauthorized ×5"]


def test_run_health_names_the_reason_a_model_failed_not_just_its_kind(tmp_path: Path) -> None:
    def failed(i: int, error: str | None) -> bytes:
        return Record(f"j{i}", "m", "vanilla", "v1", 1001, i, status=FAILED,
                      error_kind="permanent", error=error).to_json()

    paid = "openrouter HTTP 402: {\"error\": {\"message\": \"Insufficient credits\"}}"
    log = tmp_path / "log.jsonl"
    log.write_bytes(b"".join([*(failed(i, paid) for i in range(4)),
                              failed(4, "content filter: the answer was withheld"),
                              failed(5, None)]))
    stats, _ = run_stats(log)
    assert dict(stats["m"].failure_reasons) == {
        "HTTP 402 Payment Required": 4, "content filter: the answer was withheld": 1,
        "permanent": 1}


def test_version_section_sums_up_each_models_spread(md: str, run: Path) -> None:
    rows = _md_table(md, "### Spread across versions")
    assert [r[0] for r in rows] == ["alpha-7b", "beta-chat"]
    with open(run / CSV_NAME, newline="", encoding="utf-8") as f:
        want = {r["dimension"]: float(r["version_spread"]) for r in csv.DictReader(f)
                if (r["model"], r["condition"], r["family"]) == ("alpha-7b", "vanilla", "pvq")}
    assert rows[0][1:11] == [fmt(want[d], sign=False) for d in PVQ]
    each = _md_table(md, "### alpha-7b: each version")
    assert [r[0] for r in each][:3] == list(VERSIONS[:3])


def test_long_csv_carries_each_human_percentile(run: Path) -> None:
    with open(run / CSV_NAME, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    pct = [float(r["human_percentile"]) for r in rows]
    assert all(0 <= p <= 100 for p in pct) and len(set(pct)) > 20


def test_human_section_draws_one_picture_per_family_with_its_50_line(md: str, html: str) -> None:
    section = html.split('id="humans"', 1)[1].split("</section>", 1)[0]
    assert section.count("<svg") == 3
    # One dashed median line per dimension column: 10 values + 4 higher-order + 5 traits.
    assert section.count('class="median"') == 19
    assert section.count('class="pct"') == 2 * 19  # a bar per model and dimension
    rows = _md_table(md, "### Schwartz values: percentile among the raters")
    assert [r[0] for r in rows] == ["alpha-7b", "beta-chat"]
    assert all(0 <= int(v) <= 100 for r in rows for v in r[1:])


def test_health_reports_the_design_effect_and_which_intervals_were_used(md: str) -> None:
    rows = _md_table(md, "### Interval design effect")
    assert [r[0] for r in rows] == ["pvq", "higher_pvq", "bfi"]
    assert all(0.3 < float(r[1]) < 3 for r in rows)
    assert "this report's intervals: cluster" in md
    assert "resamples of queries with their 5 responses (cluster)" in md


def test_reliability_names_the_item_set_of_each_alpha(md: str) -> None:
    section = md.split("## 7. Reliability", 1)[1].split("## 8.", 1)[0]
    head = section.split("| family |", 1)[1].split("\n", 1)[0]
    assert "r > 0.3 (positive correlations, no p-value cut: Table 1's set)" in head
    assert "the paper rule's items (r > 0.3 and p < 0.05)" in head


def test_score_writes_intervals_and_percentiles_into_scores_json(tmp_path: Path,
                                                                 data_dir: Path) -> None:
    import json

    root = make_run(tmp_path / "run", data_dir, models=("solo",), personas=("gender=male",),
                    steer=())
    env = {**os.environ, "VPBATCH_DATA": str(data_dir)}
    out = subprocess.run([sys.executable, "-m", "vpbatch", "score", str(root), "--boot", "200"],
                         capture_output=True, text=True, env=env, check=True)
    assert "human percentiles are null" not in out.stdout
    doc = json.loads((root / "scores.json").read_text("utf-8"))
    for cond in ("vanilla", "persona:gender=male"):
        cell_of = doc["models"]["solo"][cond]
        assert cell_of["trust"]["verdict"]  # beside the families: the trust panel
        for fam, dims in cell_of.items():
            if fam == "trust":
                continue
            for dim, cell in dims.items():
                assert set(cell) == {"score", "raw", "n_items", "ci_low", "ci_high",
                                     "human_percentile"}, (fam, dim)
                assert cell["ci_low"] <= cell["score"] <= cell["ci_high"]
                assert 0 <= cell["human_percentile"] <= 100
    assert doc["bootstrap"]["kind"] == "cluster" and doc["bootstrap"]["n_boot"] == 200
    assert set(doc["alpha"]) == set(doc["alpha_scoring_rule"]) == {"pvq", "higher_pvq", "bfi"}
    assert doc["human_percentile"] == {"note": None}
    item = subprocess.run([sys.executable, "-m", "vpbatch", "score", str(root), "--boot", "200",
                           "--bootstrap", "item"], capture_output=True, text=True, env=env)
    assert item.returncode == 0, item.stderr
    assert json.loads((root / "scores.json").read_text("utf-8"))["bootstrap"]["kind"] == "item"
