"""The report stage: takes a run dir (its log and config), gives report.md, report.html and CSVs.

`data.gather` builds the `ReportData` every renderer reads; `markdown`, `html` and `csv` render
it; `svg` draws the charts; `common` holds what the renderers share.
"""

from __future__ import annotations

from pathlib import Path

from vpbatch.log.rundir import RunDir
from vpbatch.report import csv, html, markdown
from vpbatch.report.common import CSV_NAME, CSV_VERSIONS_NAME
from vpbatch.report.data import gather
from vpbatch.scoring.scorer import ScoreOptions

__all__ = ["write_report", "CSV_NAME", "CSV_VERSIONS_NAME"]


def write_report(
    run_dir: Path,
    *,
    data: Path | None = None,
    options: ScoreOptions | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    bootstrap: str = "cluster",
    reference: str | None = None,
) -> tuple[Path, Path]:
    """Write report.md, report.html, scores_long.csv and scores_by_version.csv into the run dir.

    `reference="paper"` sets the paper's 33 recorded models beside the run's, greyed.
    """
    rep = gather(run_dir, data=data, options=options, n_boot=n_boot, seed=seed,
                 bootstrap=bootstrap, reference=reference)
    rd = RunDir.at(rep.run_dir)
    csv.write_long(rep.analysis, rd.path / CSV_NAME)
    csv.write_versions(rep.analysis, rd.path / CSV_VERSIONS_NAME)
    _atomic(rd.report_md_path, markdown.render(rep))
    _atomic(rd.report_html_path, html.render(rep))
    return rd.report_md_path, rd.report_html_path


def _atomic(path: Path, text: str) -> None:
    # Write-then-rename: a browser or a reader never sees half a report.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
