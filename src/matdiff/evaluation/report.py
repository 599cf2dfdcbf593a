"""Files a person reads after a run: JSON and CSV tables, frac/cov plots (field grids: matdiff.figures)."""

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
    tmp.write_text(json.dumps(_finite_or_none(payload), indent=2))
    tmp.replace(path)


def _finite_or_none(value: Any) -> Any:
    """Recursively replace non-finite floats by None so the JSON is standard."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(v) for v in value]
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
