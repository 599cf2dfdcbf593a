"""What a person reads after a run: JSON and CSV tables, printed tables, frac/cov plots and design pictures
(field grids: matdiff.figures)."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as indented JSON atomically (tmp file + rename); NaN becomes null."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(plain_json(payload), indent=2))
    tmp.replace(path)


def plain_json(value: Any) -> Any:
    """``value`` with numpy arrays and scalars as lists and Python numbers and non-finite floats as None
    (standard JSON)."""
    if isinstance(value, dict):
        return {k: plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain_json(value.tolist())
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write rows (dicts with the same keys) as CSV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not rows:
        path.write_text("")
        return
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def frac_cov_png(path: Path, targets: Sequence[float], rows: Sequence[dict[str, float]]) -> None:
    """Plot every ``frac@*`` and ``cov@*`` column of ``rows`` against the target bulk modulus (GPa)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_frac, ax_cov) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key in rows[0]:
        ax = ax_frac if key.startswith("frac@") else ax_cov if key.startswith("cov@") else None
        if ax is not None:
            ax.plot(targets, [r[key] for r in rows], marker="o", label=key.split("@")[1])
    for ax, name in ((ax_frac, "frac"), (ax_cov, "cov")):
        ax.set_xlabel("target bulk modulus K* (GPa)")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, title="margin")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _number(value: Any, fmt: str) -> str:
    """A scalar formatted with ``fmt``; lists (tensor quantities) by their Frobenius norm; None as "-"."""
    if value is None:
        return "-"
    value = float(np.linalg.norm(value)) if isinstance(value, list) else float(value)
    return format(value, fmt) if math.isfinite(value) else "-"


def proposals_table(rows: Sequence[dict[str, Any]], title: str):
    """A rich Table of design rows, valid ones first by relative error: materials, radius, volume fraction,
    the quantity of the generated sample and re-evaluated (norms for tensors), relative error; with a
    refinement stage also the unrefined design's re-evaluated value and error ("unrefined"), and "*" marks a
    refined design."""
    from rich.table import Table

    refined = bool(rows) and "before_value" in rows[0]
    table = Table(title=title + (" (* refined)" if refined else ""))
    columns = ["#", "matrix", "particle", "radius", "vf", "generated", "re-evaluated", "rel. err"]
    for col in columns + (["unrefined"] if refined else []):
        table.add_column(col, justify="left" if col in ("matrix", "particle") else "right")
    order = sorted(rows, key=lambda r: (not r["valid"], _sort_key(r["relative_error"])))
    for r in order:
        generated = _number(r["value_generated"], ".2f")
        index = f"{r['index']}*" if r.get("refined") else str(r["index"])
        before = [_before(r)] if refined else []
        if not r["valid"]:
            table.add_row(index, f"[red]invalid: {r['reason']}", "", "", "", generated, "", "", *before)
            continue
        table.add_row(
            index,
            r.get("matrix", ""),
            r.get("particle", ""),
            _number(r.get("radius"), ".3f"),
            _number(r.get("volume_fraction"), ".3f"),
            generated,
            _number(r["value"], ".2f"),
            _number(r["relative_error"], ".2%"),
            *before,
        )
    return table


def _before(row: dict[str, Any]) -> str:
    """The unrefined design's re-evaluated value and relative error, e.g. "103.07 (14.11%)"."""
    if not row["before_valid"]:
        return "invalid"
    return f"{_number(row['before_value'], '.2f')} ({_number(row['before_relative_error'], '.2%')})"


def _sort_key(error: Any) -> float:
    """Relative errors sort ascending, missing ones last."""
    return math.inf if error is None or not math.isfinite(error) else float(error)


def design_captions(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One caption per design picture: generated and re-evaluated values and the relative error."""
    captions = []
    for r in rows:
        head = f"#{r['index']} gen={_number(r['value_generated'], '.1f')}"
        tail = f"re={_number(r['value'], '.1f')} ({_number(r['relative_error'], '.1%')})"
        captions.append(f"{head}\n{tail}" if r["valid"] else f"{head}\ninvalid")
    return captions


def write_design_report(out: Path, campaign, settings: dict[str, Any]) -> None:
    """design.json (settings, timings, traces, every proposal), proposals.csv and designs.png of a one-target
    campaign (``evaluation.campaign.CampaignResult``)."""
    from matdiff.figures import field_grid_png

    rows = campaign.rows[0]
    write_csv(out / "proposals.csv", rows)
    payload = {
        **settings,
        "target": campaign.objectives[0].target,
        "quantity": campaign.objectives[0].quantity,
        "seconds": campaign.seconds[0],
        "trace": campaign.traces[0],
        "metrics": campaign.table[0],
        "proposals": rows,
    }
    write_json(out / "design.json", payload)
    if campaign.fields[0] is not None:
        title = f"{campaign.objectives[0].name} (channel 0)"
        field_grid_png(out / "designs.png", campaign.fields[0], design_captions(rows), title)


def write_campaign_report(out: Path, campaign, settings: dict[str, Any]) -> None:
    """table.csv (one metrics row per target), evaluate.json (settings and the table) and frac_cov.png."""
    write_csv(out / "table.csv", campaign.table)
    write_json(out / "evaluate.json", {**settings, "rows": campaign.table})
    if all("target_GPa" in row for row in campaign.table):
        frac_cov_png(out / "frac_cov.png", [row["target_GPa"] for row in campaign.table], campaign.table)


def metrics_table(rows: Sequence[dict[str, Any]], title: str):
    """A rich Table of per-target metrics: target, n, valid, frac and cov at 1% and 5%, distinct material
    pairs, mean density; with a refinement stage each also before it (``*_before``) and the refined count."""
    from rich.table import Table

    columns = ["target_GPa", "n", "valid"]
    for key in ("frac@1%", "cov@1%", "frac@5%", "cov@5%", "pairs", "mean_density"):
        columns += [key, f"{key}_before"]
    shown = [c for c in [*columns, "refined"] if c in rows[0]]
    table = Table(title=title)
    for col in shown:
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(*[f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in shown])
    return table
