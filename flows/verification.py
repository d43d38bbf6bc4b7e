"""Verification of the forecast archive as Prefect tasks, and its products: the history
table (`verification-history` table artifact), the skill-over-time figure, and the
"Verification history" section of the forecast report (`report_section`).

The scoring is pipeline/evaluation/verify.py (pipeline.evaluation.metrics and
pipeline.evaluation.baselines underneath).
"""

from __future__ import annotations

import math
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from flows.tasks import _IO, _plain

FOLDER = "verification"  # under the forecast out_dir
FIGURE = "skill_over_time.png"
SUMMARY = "summary.csv"
TABLE_COLUMNS = ("model_version", "forecast", "lead", "n", "rmse", "skill_vs_climatology",
                 "skill_vs_persistence")


def _fmt(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def write_products(archive: str, out_dir: str) -> dict[str, str]:
    """Draw the skill-over-time figure and write the summary table of the archive's
    verification history into `out_dir`/verification; returns name -> path."""
    from pipeline.evaluation.archive import history
    from pipeline.evaluation.verify import skill_figure, summary

    folder = Path(out_dir) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    table = history(archive)
    figure, summary_path, drawn = folder / FIGURE, folder / SUMMARY, folder / ".drawn"
    # Redrawn only when the history changed since (a report asks twice: file and artifact).
    last = str(table["verified_at"].max()) if "verified_at" in table and len(table) else ""
    state = f"{archive}|{len(table)}|{last}"
    if not (figure.is_file() and summary_path.is_file() and drawn.is_file()
            and drawn.read_text() == state):
        skill_figure(table).savefig(figure, dpi=100)
        summary(table).to_csv(summary_path, index=False, float_format="%.6g")
        drawn.write_text(state)
    return {"figure": str(figure), "summary": str(summary_path)}


def _markdown_table(rows: list[dict]) -> str:
    columns = [c for c in TABLE_COLUMNS if rows and c in rows[0]]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def _context(folder, embed: bool):
    """A report context with no forecast: only where the section's figure goes."""
    from flows.artifacts import ReportContext

    return ReportContext(attrs={}, provenance="", metrics=None, maps={}, stores={},
                         folder=Path(folder), embed=embed)


def report_section(archive: str, context) -> list[str]:
    """The report's "Verification history" section: skill per model version, forecast and
    lead (global), and the skill-over-time figure (embedded or relative as the report
    `context`, a flows.artifacts.ReportContext, says)."""
    from flows.artifacts import _image
    from pipeline.evaluation.archive import entries, history
    from pipeline.evaluation.verify import summary

    table = history(archive)
    parts = ["## Verification history", ""]
    count = len(entries(archive))
    if table.empty:
        parts += [f"{count} forecast(s) archived in `{archive}`; none verified yet (their "
                  "valid times are not observed).", ""]
        return parts
    verified = table[["issue_time", "version"]].drop_duplicates()
    parts += [f"{count} forecast(s) archived in `{archive}`, {len(verified)} verified so far "
              f"(issue times {str(table['issue_time'].min())[:10]} to "
              f"{str(table['issue_time'].max())[:10]}). Mean global scores per model version "
              "and lead; skill = 1 − RMSE/RMSE_ref.", "",
              _markdown_table(summary(table, region="global").to_dict(orient="records")), ""]
    products = write_products(archive, str(context.folder))
    image = _image("skill_over_time", products["figure"], context)
    parts += ["**skill over time**", "", f"![skill_over_time]({image})", ""]
    return parts


@task(name="verify", **_IO)
def verify_task(archive: str, truth: str) -> dict:
    """Score the archived forecasts whose valid times are now observed (each lead once) and
    commit the rows to the archive's history."""
    from pipeline.evaluation.verify import verify_archive

    rows = verify_archive(archive, truth)
    scored = rows[["issue_time", "version", "lead"]].drop_duplicates() if len(rows) else rows
    get_run_logger().info("verified %d (issue time, lead) pair(s) of %d entr(ies)",
                          len(scored), scored["issue_time"].nunique() if len(rows) else 0)
    return {"rows": len(rows), "pairs": len(scored)}


@task(name="publish-verification", cache_policy=NONE)
def publish_task(archive: str, out_dir: str) -> dict:
    """Publish the history: the `verification-history` table artifact, the figure and a
    `verification-report` markdown artifact (figure embedded); also written as
    `out_dir`/verification/verification.md."""
    from pipeline.evaluation.archive import history
    from pipeline.evaluation.verify import summary

    products = write_products(archive, out_dir)
    rows = _plain(summary(history(archive)).to_dict(orient="records"))
    create_table_artifact(rows or [{"status": "nothing verified yet"}],
                          key="verification-history",
                          description="mean scores per model version, forecast, region and "
                          "lead over the verified archived forecasts")
    path = Path(out_dir) / FOLDER / "verification.md"
    path.write_text("\n".join(report_section(archive, _context(path.parent.parent, False))))
    create_markdown_artifact("\n".join(report_section(archive, _context(out_dir, True))),
                             key="verification-report",
                             description="verification history of the forecast archive")
    return {**products, "report": str(path), "rows": len(rows)}
