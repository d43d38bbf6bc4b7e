"""Prefect artifacts of a forecast run: the markdown report, metric tables and links.

The report is also written as `report.md` beside the maps (relative image links) so it reads
the same outside Prefect; in the Prefect UI the maps are embedded as data URIs.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
from pathlib import Path

from prefect import task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NONE

REPORT_LEADS = (1, 2, 3, 6, 9, 12, 18, 24, 36, 48)  # leads shown in the report's table
REPORT_MAPS = ("skill_vs_lead", "nino34_plume", "sst_lead", "anomaly_lead", "error_lead",
               "bias_lead", "parameters")


def _key(text: str) -> str:
    """An artifact key: lowercase letters, digits and dashes only."""
    cleaned = "".join(c if c.isalnum() else "-" for c in text.lower())
    return "-".join(part for part in cleaned.split("-") if part)[:100]


def _uri(path: str) -> str:
    return path if "://" in path else Path(path).resolve().as_uri()


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def metrics_markdown(rows: list[dict], *, region: str, leads=REPORT_LEADS) -> str:
    """A markdown table of RMSE / ACC / skill per forecast for some leads of one region."""
    chosen = [r for r in rows if r["region"] == region and int(r["lead"]) in leads]
    if not chosen:
        chosen = [r for r in rows if r["region"] == region]
    columns = ["forecast", "lead", "rmse", "bias", "acc", "skill_vs_climatology",
               "skill_vs_persistence"]
    columns = [c for c in columns if chosen and c in chosen[0]]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in sorted(chosen, key=lambda r: (int(r["lead"]), str(r["forecast"]))):
        lines.append("| " + " | ".join(_fmt(row[c]) for c in columns) + " |")
    return "\n".join(lines)


def _thumbnail(path: str, width: int = 720) -> str:
    """A small palette PNG of `path` as a data URI (the whole report must stay well under
    the server's ~1.5 MB event limit)."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        if image.width > width:
            image = image.resize((width, round(image.height * width / image.width)),
                                 Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.quantize(colors=128).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _image(path: str, embed: bool, folder: Path) -> str:
    """The image reference: a data URI, or the path relative to the report's folder."""
    if embed:
        return _thumbnail(path)
    try:
        return Path(path).resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        return Path(path).resolve().as_uri()


def _ordered_maps(maps: dict[str, str]) -> list[tuple[str, str]]:
    """Report order: skill lines, plume, then the maps per lead, then the parameters."""
    def rank(item):
        name = item[0]
        for i, prefix in enumerate(REPORT_MAPS):
            if name.startswith(prefix):
                return (i, name)
        return (len(REPORT_MAPS), name)

    return sorted(maps.items(), key=rank)


def report_markdown(*, title: str, forecast_attrs: dict, provenance: str,
                    metrics: dict | None, maps: dict[str, str], stores: dict[str, str],
                    embed: bool, folder: Path, sections: str = "") -> str:
    """The forecast report: summary, metrics, maps, stores, config and data provenance."""
    parts = [f"# {title}", "",
             f"Created {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC from run "
             f"`{forecast_attrs.get('run', '?')}` (trained to "
             f"{forecast_attrs.get('train_end', '?')}).", ""]
    if metrics:
        parts += ["## Scores (ocean, cos-latitude weighted)", "",
                  "Global; skill = 1 − RMSE/RMSE_ref. Full tables: "
                  f"`{metrics['csv']}`, `{metrics['json']}`.", "",
                  metrics_markdown(metrics["rows"], region="global"), "",
                  "### Niño3.4", "", metrics_markdown(metrics["rows"], region="nino34"), ""]
    else:
        parts += ["## Scores", "", "No truth covers the valid times yet: not scored.", ""]
    if sections:  # e.g. the verification history (flows/verification.py)
        parts += [sections, ""]
    parts += ["## Maps", ""]
    for name, path in _ordered_maps(maps):
        image = _image(path, embed, folder)
        parts += [f"**{name.replace('_', ' ')}**", "", f"![{name}]({image})", ""]
    parts += ["## Stores", ""] + [f"- {k}: `{v}`" for k, v in stores.items()] + [""]
    config = forecast_attrs.get("config")
    if config:
        try:
            config = json.dumps(json.loads(config), indent=1)
        except (TypeError, ValueError):
            pass
        parts += ["## Model configuration", "", "```json", str(config), "```", ""]
    parts += ["## Data provenance", "", "```", provenance.strip(), "```", ""]
    return "\n".join(parts)


@task(name="report", cache_policy=NONE)
def report_task(forecast: str, store: str, out_dir: str, metrics: dict | None,
                maps: dict[str, str], stores: dict[str, str],
                archive: str | None = None) -> str:
    """Write report.md and publish the report, metric tables and link artifacts; with a
    forecast `archive`, the report shows its verification history."""
    from flows.verification import report_section
    from pipeline.forecast_store import open_forecast
    from pipeline.store import describe

    attrs = dict(open_forecast(forecast).attrs)
    model = str(attrs.get("model", "forecast"))
    title = f"SST forecast report: {model}"
    provenance = describe(store)
    common = dict(title=title, forecast_attrs=attrs, provenance=provenance, metrics=metrics,
                  maps=maps, stores=stores)
    path = Path(out_dir) / "report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    def extra(embed):
        return report_section(archive, out_dir, embed=embed) if archive else ""

    path.write_text(report_markdown(**common, embed=False, folder=path.parent,
                                    sections=extra(False)))
    create_markdown_artifact(report_markdown(**common, embed=True, folder=path.parent,
                                             sections=extra(True)),
                             key="forecast-report",
                             description=title)
    if metrics:
        regions = sorted({r["region"] for r in metrics["rows"]})
        for region in regions:
            table = [r for r in metrics["rows"] if r["region"] == region]
            create_table_artifact(table, key=_key(f"metrics-{region}"),
                                  description=f"scores per lead and forecast, {region}")
        leads = sorted({int(r["lead"]) for r in metrics["rows"]})
        for lead in leads[:12]:
            table = [r for r in metrics["rows"] if int(r["lead"]) == lead]
            create_table_artifact(table, key=_key(f"metrics-lead-{lead}"),
                                  description=f"scores per region and forecast, lead {lead}")
    links = {**stores, "report": str(path), **maps}
    if metrics:
        links.update(metrics_csv=metrics["csv"], metrics_json=metrics["json"])
    for name, target in links.items():
        create_link_artifact(_uri(target), link_text=name, key=_key(f"link-{name}"),
                             description=f"{name} of the latest forecast run")
    return str(path)
