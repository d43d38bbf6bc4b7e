"""Prefect artifacts of a forecast run: the report and one scores table.

A forecaster meets few artifacts, under stable keys:

- ``forecast-report`` (markdown): maps first, then the scores, files, model configuration and
  data provenance; published on the forecast flow run and, by `sst_pipeline`, on the parent
  run the user launched. The maps are embedded as small data URIs (WebP for maps, PNG for
  line charts), so the report stays far under the server's event size limit on a 1° grid.
- ``forecast-scores`` (table): rounded scores with units and readable headers.
- ``progress-<step>`` (progress): one per long step, from `pipeline.progress`.

The report is also written as `report.md` beside the maps (relative image links, reads the
same outside Prefect) and as `report-standalone.md` (images embedded, one file to pass on).
No link artifacts: file paths are not links a browser will follow, so the report names them.

The report is a list of small section functions (`REPORT_SECTIONS`), each taking a
`ReportContext` and returning markdown lines; pass ``sections=`` to add one.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from pipeline.regions import REGIONS

REPORT_KEY = "forecast-report"
SCORES_KEY = "forecast-scores"
REPORT_LEADS = (1, 3, 6, 12, 24, 48)  # leads shown in the report's tables
SCORE_REGIONS = ("global", "nino34")  # regions in the report and the scores table
# Figures in report order; the first three follow the summary at once.
KEY_FIGURES = ("anomaly", "nino34_plume", "skill_vs_lead")
MORE_FIGURES = ("error", "bias", "sst", "parameters")
CHARTS = ("nino34_plume", "skill_vs_lead")  # line charts: PNG keeps their lines sharp
MAP_WIDTH, CHART_WIDTH = 900, 900  # embedded image widths, px
SERVER_LIMIT = 1_500_000  # the Prefect server's event size limit, about 1.5 MB
REPORT_BUDGET = 800_000  # embedded images shrink until the report fits this
MISSING = "–"
HEADLINE = "Global ocean RMSE at lead"
NOT_SCORED = "Not scored yet: no truth covers the valid times."

FIGURE_CAPTIONS = {
    "anomaly": "Forecast SST anomaly against the training-period monthly climatology",
    "nino34_plume": "Niño3.4 index: recent forecasts of the model and the baselines, observed",
    "skill_vs_lead": "Skill against lead: RMSE, anomaly correlation and sample size",
    "error": "Error of the latest verified forecasts (forecast − observed)",
    "bias": "Mean bias over all verified forecasts",
    "sst": "Forecast SST",
    "parameters": "What the model identified: ODE parameters and latents",
}
COLUMNS = {  # scores-table column -> header
    "forecast": "Forecast",
    "region": "Region",
    "lead": "Lead",
    "rmse": "RMSE [°C]",
    "acc": "ACC",
    "skill_vs_climatology": "Skill vs clim.",
    "skill_vs_persistence": "Skill vs pers.",
    "bias": "Bias [°C]",
    "n_init": "Issues",
}


@dataclass
class ReportContext:
    """What a report section may use."""

    attrs: dict  # the forecast store's attributes
    provenance: str
    metrics: dict | None  # evaluate_task's result: rows, csv, json
    maps: dict[str, str]  # figure name -> PNG path
    stores: dict[str, str]
    files: dict[str, str] = field(default_factory=dict)  # other products: name -> path
    embed: bool = False  # data URIs (Prefect, standalone) or relative paths (report.md)
    folder: Path = Path(".")  # report.md's folder, for relative paths
    issued: str | None = None  # the last issue time, e.g. "Dec 2006"
    first_issued: str | None = None  # the first, when the run is a hindcast
    lead_units: str = "months"
    image_scale: float = 1.0  # embedded image widths relative to MAP_WIDTH / CHART_WIDTH
    archive: str | None = None  # the forecast archive, for the verification history


# --------------------------------------------------------------------------- formatting


def _display(name: object) -> str:
    from pipeline.products.maps import display_name

    return display_name(name)


def _number(value, digits: int = 2) -> str:
    """Rounded for reading; `MISSING` for None/NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}".replace("-", "−")
    return str(value)


def _month(value) -> str:
    import pandas as pd

    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        return str(value)
    return stamp.strftime("%b %Y") if stamp.day == 1 else stamp.strftime("%Y-%m-%d")


def _score_rows(rows: list[dict], *, regions: Sequence[str] = SCORE_REGIONS,
                leads: Sequence[int] | None = None) -> list[dict]:
    """Rows of the given regions (and leads), model first, sorted by region then lead."""
    order = list(dict.fromkeys(str(r["forecast"]) for r in rows))
    chosen = [r for r in rows if r["region"] in regions
              and (leads is None or int(r["lead"]) in leads)]
    return sorted(chosen, key=lambda r: (list(regions).index(r["region"]), int(r["lead"]),
                                         order.index(str(r["forecast"]))))


def scores_table(rows: list[dict], *, lead_units: str = "months",
                 regions: Sequence[str] = SCORE_REGIONS) -> list[dict]:
    """The ``forecast-scores`` table: readable headers with units, rounded values, `MISSING`
    where a score is undefined (climatology's ACC)."""
    out = []
    for row in _score_rows(rows, regions=regions):
        line = {}
        for column, header in COLUMNS.items():
            if column not in row:
                continue
            value = row[column]
            if column == "forecast":
                value = _display(value)
            elif column == "region":
                value = REGIONS[value].short if value in REGIONS else value
            elif column == "lead":
                header = f"Lead [{lead_units}]"
                value = int(value)
            elif column == "n_init":
                value = int(value) if value is not None else MISSING
            else:
                value = _number(value)
            line[header] = value
        out.append(line)
    return out


def metrics_markdown(rows: list[dict], *, region: str, leads=REPORT_LEADS,
                     lead_units: str = "months") -> str:
    """A markdown table of RMSE / ACC / skill per forecast for some leads of one region."""
    chosen = _score_rows(rows, regions=[region], leads=leads) or _score_rows(
        rows, regions=[region])
    columns = [c for c in ("forecast", "lead", "rmse", "acc", "skill_vs_climatology",
                           "skill_vs_persistence", "bias") if chosen and c in chosen[0]]
    headers = [f"Lead [{lead_units}]" if c == "lead" else COLUMNS[c] for c in columns]
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join(":--" if c == "forecast" else "--:" for c in columns) + "|"]
    for row in chosen:
        cells = [_display(row[c]) if c == "forecast" else _number(row[c]) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- images


def _thumbnail(path: str, *, chart: bool, scale: float = 1.0) -> str:
    """A small data URI of `path`: lossless palette PNG for line charts, WebP for maps."""
    from PIL import Image

    width = round((CHART_WIDTH if chart else MAP_WIDTH) * scale)
    with Image.open(path) as image:
        image = image.convert("RGB")
        if image.width > width:
            image = image.resize((width, round(image.height * width / image.width)),
                                 Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        if chart:
            image.quantize(colors=64).save(buffer, format="PNG", optimize=True)
            kind = "png"
        else:
            image.save(buffer, format="WEBP", quality=75, method=6)
            kind = "webp"
    return f"data:image/{kind};base64," + base64.b64encode(buffer.getvalue()).decode()


def _image(name: str, path: str, context: ReportContext) -> str:
    """The image reference: a data URI, or the path relative to the report's folder."""
    if context.embed:
        return _thumbnail(path, chart=name in CHARTS, scale=context.image_scale)
    try:
        return Path(path).resolve().relative_to(context.folder.resolve()).as_posix()
    except ValueError:
        return Path(path).resolve().as_uri()


def _figures(names: Sequence[str], context: ReportContext) -> list[str]:
    parts = []
    for name in names:
        if name in context.maps:
            caption = FIGURE_CAPTIONS.get(name, name.replace("_", " "))
            image = _image(name, context.maps[name], context)
            parts += [f"**{caption}**", "", f"![{name}]({image})", ""]
    return parts


# --------------------------------------------------------------------------- sections


def title(context: ReportContext) -> str:
    model = _display(context.attrs.get("model", "forecast"))
    issued = f", issued {context.issued}" if context.issued else ""
    return f"{model} SST forecast{issued}"


def summary_section(context: ReportContext) -> list[str]:
    """Title and one line: run, training period, when made."""
    attrs = context.attrs
    trained = attrs.get("train_end") or attrs.get("climatology_end")
    run = Path(str(attrs.get("run", "?"))).name
    hindcasts = (f"hindcasts issued monthly from {context.first_issued}; "
                 if context.first_issued else "")
    line = (f"{hindcasts}model run `{run}`, trained to {_month(trained) if trained else '?'}; "
            f"report made {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC.")
    line = line[0].upper() + line[1:]
    if not context.metrics:
        line += " No truth covers the valid times yet: not scored."
    return [f"# {title(context)}", "", line, ""]


def key_figures_section(context: ReportContext) -> list[str]:
    return _figures(KEY_FIGURES, context)


def headline(context: ReportContext) -> str | None:
    """`S-MNN RMSE at lead 1: 0.41 °C (persistence 0.52 °C, ...)`, global ocean."""
    if not context.metrics:
        return None
    rows = [r for r in context.metrics["rows"] if r["region"] == "global"]
    if not rows:
        return None
    first = min(int(r["lead"]) for r in rows)
    at = [r for r in rows if int(r["lead"]) == first]
    model, *references = at
    others = ", ".join(f"{_display(r['forecast'])} {_number(r['rmse'])} °C" for r in references)
    return (f"{HEADLINE} {first}: **{_display(model['forecast'])} "
            f"{_number(model['rmse'])} °C**" + (f" ({others})" if others else ""))


def scores_section(context: ReportContext) -> list[str]:
    if not context.metrics:
        return ["## Scores", "", "No truth covers the valid times yet: not scored.", ""]
    rows = context.metrics["rows"]
    parts = ["## Scores", ""]
    line = headline(context)
    if line:
        parts += [line + ".", ""]
    parts += ["Ocean points, cos-latitude weighted; skill = 1 − RMSE / RMSE of the reference; "
              f"{MISSING}: undefined (climatology has no anomaly to correlate). All regions "
              "and leads: the `forecast-scores` table and the metrics files below.", ""]
    for region in SCORE_REGIONS:
        if any(r["region"] == region for r in rows):
            name = REGIONS[region].label if region in REGIONS else region
            parts += [f"### {name[0].upper() + name[1:]}", "",
                      metrics_markdown(rows, region=region, lead_units=context.lead_units), ""]
    return parts


def more_figures_section(context: ReportContext) -> list[str]:
    parts = _figures(MORE_FIGURES, context)
    return ["## More maps", "", *parts] if parts else []


def files_section(context: ReportContext) -> list[str]:
    entries = {**context.stores, **context.files}
    if context.metrics:
        entries.update({"metrics (CSV)": context.metrics["csv"],
                        "metrics (JSON)": context.metrics["json"]})
    return ["## Files", ""] + [f"- {name}: `{path}`" for name, path in entries.items()] + [""]


def configuration_section(context: ReportContext) -> list[str]:
    config = context.attrs.get("config")
    if not config:
        return []
    try:
        config = json.dumps(json.loads(config), indent=1)
    except (TypeError, ValueError):
        pass
    return ["## Model configuration", "", "```json", str(config), "```", ""]


def provenance_section(context: ReportContext) -> list[str]:
    return ["## Data provenance", "", "```", context.provenance.strip(), "```", ""]


def verification_section(context: ReportContext) -> list[str]:
    """The verification history of the forecast archive (flows/verification.py)."""
    if not context.archive:
        return []
    from flows.verification import report_section

    return report_section(context.archive, context)


Section = Callable[[ReportContext], list[str]]
REPORT_SECTIONS: tuple[Section, ...] = (
    summary_section, key_figures_section, scores_section, verification_section,
    more_figures_section, files_section, configuration_section, provenance_section,
)


def report_markdown(context: ReportContext, *,
                    sections: Sequence[Section] = REPORT_SECTIONS) -> str:
    """The forecast report: each section's lines, in order."""
    parts: list[str] = []
    for section in sections:
        parts += section(context)
    return "\n".join(parts)


# --------------------------------------------------------------------------- publishing


def publish_report(markdown: str, description: str) -> None:
    """The report as the ``forecast-report`` artifact of the current flow or task run."""
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(markdown, key=REPORT_KEY, description=description)


def publish_report_file(path: str | Path) -> None:
    """Publish an already written standalone report (for the parent flow run), described by
    its headline line as `report_task` describes it."""
    text = Path(path).read_text()
    publish_report(text, _described(text))


def _described(text: str) -> str:
    for line in text.splitlines():
        if line.startswith(HEADLINE):
            return line.replace("**", "").rstrip(".")
    return NOT_SCORED


def _issued(times: list) -> tuple[str | None, str | None]:
    """(last issue time, first issue time when there are several)."""
    if not times:
        return None, None
    return _month(times[-1]), (_month(times[0]) if len(times) > 1 else None)


def description(context: ReportContext) -> str:
    """The artifact's one-line description: the headline score, not the title again."""
    line = headline(context)
    return line.replace("**", "") if line else NOT_SCORED


@task(name="report", cache_policy=NONE)
def report_task(forecast: dict, store: str, out_dir: str, metrics: dict | None,
                maps: dict[str, str], stores: dict[str, str],
                files: dict[str, str] | None = None,
                sections: Sequence[Section] = REPORT_SECTIONS,
                archive: str | None = None) -> str:
    """Write report.md and report-standalone.md (images embedded); publish the scores
    table. `forecast`: what hindcast_task returned (attributes, issue times, lead units).
    Returns the path of report.md; the flow publishes report-standalone.md beside it
    with `publish_report_file`, on the flow run rather than this task run."""
    from prefect.artifacts import create_table_artifact

    from pipeline.data.store import describe

    last, first = _issued(forecast["inits"])
    context = ReportContext(
        attrs=dict(forecast["attrs"]), provenance=describe(store), metrics=metrics, maps=maps,
        stores=stores, files=dict(files or {}), folder=Path(out_dir), issued=last,
        first_issued=first, lead_units=forecast["lead_units"], archive=archive)
    path = Path(out_dir) / "report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report_markdown(context, sections=sections))
    embedded = embedded_report(context, sections=sections)
    standalone_path(path).write_text(embedded)
    if metrics:
        create_table_artifact(scores_table(metrics["rows"], lead_units=context.lead_units),
                              key=SCORES_KEY,
                              description=f"{title(context)}: scores per lead, global ocean "
                                          "and Niño3.4; Issues: issue times scored (all "
                                          "regions in the metrics files)")
    return str(path)


def embedded_report(context: ReportContext, *, sections: Sequence[Section] = REPORT_SECTIONS,
                    budget: int = REPORT_BUDGET) -> str:
    """The report with its images embedded, shrunk (down to 40 % of their width) until it
    fits `budget` bytes, well under the server's limit even on fine grids."""
    context.embed = True
    context.image_scale = 1.0
    text = report_markdown(context, sections=sections)
    while len(text.encode()) > budget and context.image_scale > 0.4:
        context.image_scale *= 0.75
        text = report_markdown(context, sections=sections)
    return text


def standalone_path(report: str | Path) -> Path:
    """report-standalone.md beside report.md."""
    return Path(report).with_name("report-standalone.md")
