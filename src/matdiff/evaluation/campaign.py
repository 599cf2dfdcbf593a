"""Design campaigns: any design method, any target objectives, one plan, resume, evaluation and metrics.

A campaign asks a ``matdiff.methods`` design method for n designs per target objective, in work units of at
most ``batch`` designs (unit seed = seed + 1000 * target index + chunk index, so a unit's result does not
depend on which units ran before or where). Each unit's designs are evaluated:

- the "generated" stage: the objective's FEM quantity of the generated particle field itself;
- particle designs (``ParticleDesign``): re-evaluated as the mean over ``realizations`` fresh random
  microstructures (stochastic particle count, SPEC 6);
- image designs (``ImageDesign``): the FEM quantity of the design itself.

Rows (one per design) carry the design, both values, the relative error to the target and the method's own
columns. With an output folder every finished unit is written at once (``units/``), and a re-run with the
same folder reuses the units found there; a finished target is also written whole (``target_K.json``). The
executor (``evaluation.executors``) decides where units run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from matdiff.evaluation.executors import Executor, LocalExecutor
from matdiff.evaluation.metrics import frac_within, margin_table
from matdiff.evaluation.reevaluate import (
    quantity_of_fields,
    quantity_of_properties,
    reevaluate,
    unsolved_reason,
)
from matdiff.evaluation.report import plain_json, write_json
from matdiff.guidance import TargetObjective
from matdiff.materials import Catalogue, Properties
from matdiff.methods import DesignMethod, ImageDesign, Proposals
from matdiff.microstructure import ParticleDesign

SEED_STRIDE = 1000
"""Unit seed = seed + SEED_STRIDE * target index + chunk index."""


@dataclass(frozen=True)
class WorkUnit:
    """n designs for the objective of index ``target``, its chunk ``chunk``, drawn from ``seed``."""

    target: int
    chunk: int
    n: int
    seed: int

    @property
    def key(self) -> str:
        """File stem of the unit's result, e.g. "target_1_chunk_0"."""
        return f"target_{self.target}_chunk_{self.chunk}"


def plan_units(n_targets: int, n: int, batch: int, seed: int) -> list[WorkUnit]:
    """Units covering n designs for each of n_targets targets, at most ``batch`` per unit."""
    if n < 1 or batch < 1:
        raise ValueError(f"need n >= 1 designs and batch >= 1, got n={n}, batch={batch}")
    return [
        WorkUnit(k, b, min(batch, n - start), seed + SEED_STRIDE * k + b)
        for k in range(n_targets)
        for b, start in enumerate(range(0, n, batch))
    ]


@dataclass
class Evaluator:
    """How designs are scored: the particle grid (dim, size elements per axis) of re-evaluation, fresh
    microstructures per design, the catalogue and the FEM device."""

    catalogue: Catalogue
    dim: int = 2
    size: int = 64
    realizations: int = 10
    device: str = "cpu"

    def settings(self) -> dict[str, Any]:
        """JSON-able settings."""
        return {"dim": self.dim, "size": self.size, "realizations": self.realizations, "device": self.device}

    def generated(self, proposals: Proposals, quantity: str) -> np.ndarray:
        """Quantity (n, *shape) of the generated particle fields (NaN when the method drew none)."""
        fields = proposals.fields
        if fields is None or fields.shape[1] != 3:
            return np.full(len(proposals.designs), np.nan)
        return quantity_of_fields(fields, self.catalogue, quantity, self.device)

    def designs(
        self, designs: Sequence, quantity: str, seed: int
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Mean, std (n, *shape) and failure reasons ("" if none) of every design's quantity."""
        if designs and all(isinstance(d, ImageDesign) for d in designs):
            values = quantity_of_properties(_stacked(designs), quantity, self.device)
            return values, np.zeros_like(values), [unsolved_reason(v[None]) for v in values]
        if any(d is not None and not isinstance(d, ParticleDesign) for d in designs):
            raise TypeError("a unit's designs must all be ParticleDesign (or None) or all ImageDesign")
        rng = np.random.default_rng(seed)
        return reevaluate(
            designs, self.dim, self.size, rng, self.realizations, self.catalogue, self.device, quantity
        )


def _stacked(designs: Sequence[ImageDesign]) -> Properties:
    """Float32 properties of image designs stacked into one batch (N, H, W)."""
    parts = [d.properties(torch.float32) for d in designs]
    return Properties(*(torch.cat([getattr(p, name) for p in parts]) for name in ("E", "nu", "rho")))


def design_columns(design, reason: str, catalogue: Catalogue) -> dict[str, Any]:
    """The row columns describing one design (particle: materials, radius, volume fraction, density)."""
    if isinstance(design, ParticleDesign):
        return {
            "valid": not reason,
            "reason": reason,
            "matrix": catalogue.names[design.matrix],
            "particle": catalogue.names[design.particle],
            "matrix_row": design.matrix,
            "particle_row": design.particle,
            "radius": design.radius,
            "volume_fraction": design.volume_fraction,
            "density": design.density(catalogue),
        }
    valid = design is not None and not reason
    columns: dict[str, Any] = {"valid": valid, "reason": reason or ("" if valid else "no design")}
    if design is None:
        columns |= {"matrix": "", "particle": "", "matrix_row": -1, "particle_row": -1}
        columns |= {"radius": float("nan"), "volume_fraction": float("nan"), "density": float("nan")}
    return columns


def evaluate_unit(
    method: DesignMethod, objective: TargetObjective, unit: WorkUnit, evaluator: Evaluator
) -> dict[str, Any]:
    """Propose and evaluate one unit: {"rows", "trace", "seconds"} (JSON-able) and "arrays" (numpy)."""
    proposals = method.propose(objective, unit.n, unit.seed)
    start = time.perf_counter()
    generated = evaluator.generated(proposals, objective.quantity)
    value, std, failures = evaluator.designs(proposals.designs, objective.quantity, unit.seed)
    seconds = dict(proposals.seconds, reevaluation=time.perf_counter() - start)
    errors = objective.relative_error(value)
    rows = []
    for i, design in enumerate(proposals.designs):
        reason = proposals.reasons[i] or failures[i]
        rows.append(
            {
                "index": i,
                **design_columns(design, reason, evaluator.catalogue),
                "value_generated": generated[i].tolist(),
                "value": value[i].tolist(),
                "value_std": std[i].tolist(),
                "relative_error": float(errors[i]),
                **{name: column[i] for name, column in proposals.columns.items()},
            }
        )
    arrays = dict(proposals.arrays)
    if proposals.fields is not None:
        arrays["fields"] = proposals.fields
    return {"rows": rows, "trace": proposals.trace, "seconds": seconds, "arrays": arrays}


@dataclass
class CampaignResult:
    """A finished campaign: per target its objective, rows (one per design), fields (n, C, *spatial) or None,
    traces and summed seconds; ``table`` has one metrics row per target."""

    objectives: list[TargetObjective]
    rows: list[list[dict[str, Any]]]
    fields: list[np.ndarray | None]
    arrays: list[dict[str, np.ndarray]]
    traces: list[list[dict[str, Any]]]
    seconds: list[dict[str, float]]
    table: list[dict[str, Any]] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    """Keys of units read back from the output folder instead of recomputed."""


def target_metrics(objective: TargetObjective, rows: list[dict[str, Any]], catalogue: Catalogue) -> dict:
    """One table row: target, counts, frac (and cov for scalar quantities of particle designs) at margins,
    mean density."""
    target = objective.target
    metrics: dict[str, Any] = {
        "target_GPa" if np.ndim(target) == 0 else "target": target,
        "n": len(rows),
        "valid": sum(bool(r["valid"]) for r in rows),
    }
    if np.ndim(target) == 0 and all("matrix_row" in r for r in rows):
        value = np.array([_valid_number(r, "value") for r in rows], dtype=float)
        matrix = np.array([r["matrix_row"] for r in rows])
        particle = np.array([r["particle_row"] for r in rows])
        metrics |= margin_table(value, float(target), matrix, particle, catalogue)
        densities = np.array([np.nan if r["density"] is None else r["density"] for r in rows], dtype=float)
        finite = np.isfinite(densities).any()
        metrics["mean_density"] = float(np.nanmean(densities)) if finite else float("nan")
    else:
        errors = np.array([_valid_number(r, "relative_error") for r in rows], dtype=float)
        metrics |= {f"frac@{m:.0%}": frac_within(errors, m) for m in (0.01, 0.05)}
    return metrics


def _valid_number(row: dict[str, Any], key: str) -> float:
    """row[key] of a valid row; NaN (a miss in every metric) for failed designs and missing values."""
    value = row[key]
    return np.nan if not row["valid"] or value is None else value


def run_campaign(
    method: DesignMethod,
    objectives: Sequence[TargetObjective],
    n: int,
    evaluator: Evaluator,
    *,
    batch: int | None = None,
    seed: int = 0,
    out: Path | None = None,
    executor: Executor | None = None,
    log=None,
) -> CampaignResult:
    """n designs per objective from ``method``, evaluated by ``evaluator``; see the module docstring.

    ``out``: folder for unit results (resume) and per-target results; None keeps everything in memory.
    ``log(message)`` is told about reused units and finished targets.
    """
    objectives = list(objectives)
    units = plan_units(len(objectives), n, batch or n, seed)
    results: dict[str, dict[str, Any]] = {}
    reused = []
    if out is not None:
        for unit in units:
            found = read_unit(out, unit, request(method, objectives[unit.target], evaluator))
            if found is not None:
                results[unit.key], reused = found, [*reused, unit.key]
                if log:
                    log(f"target {unit.target} chunk {unit.chunk}: reusing {unit_path(out, unit)}")
    pending = [u for u in units if u.key not in results]

    def work(unit: WorkUnit) -> dict[str, Any]:
        return evaluate_unit(method, objectives[unit.target], unit, evaluator)

    for unit, result in (executor or LocalExecutor()).map(work, pending):
        results[unit.key] = result
        if out is not None:
            write_unit(out, unit, result, request(method, objectives[unit.target], evaluator))
    return assemble(objectives, units, results, evaluator.catalogue, out, reused, method, evaluator)


def assemble(
    objectives: list[TargetObjective],
    units: list[WorkUnit],
    results: dict[str, dict[str, Any]],
    catalogue: Catalogue,
    out: Path | None,
    reused: list[str],
    method: DesignMethod,
    evaluator: Evaluator,
) -> CampaignResult:
    """Join the unit results per target (rows re-indexed 0..n-1), compute the metrics table, and write
    ``target_K.json`` per target when ``out`` is given."""
    campaign = CampaignResult(objectives, [], [], [], [], [], reused=reused)
    for k, objective in enumerate(objectives):
        parts = [results[u.key] for u in units if u.target == k]
        rows = [dict(r, index=i) for i, r in enumerate(r for p in parts for r in p["rows"])]
        seconds: dict[str, float] = {}
        for p in parts:
            for key, value in p["seconds"].items():
                seconds[key] = seconds.get(key, 0.0) + value
        fields = [p["arrays"]["fields"] for p in parts if "fields" in p["arrays"]]
        arrays = {
            name: np.concatenate([p["arrays"][name] for p in parts], axis=1 if name == "loss_history" else 0)
            for name in parts[0]["arrays"]
            if name != "fields" and all(name in p["arrays"] for p in parts)
        }
        campaign.rows.append(rows)
        campaign.fields.append(np.concatenate(fields) if fields else None)
        campaign.arrays.append(arrays)
        campaign.traces.append([p["trace"] for p in parts])
        campaign.seconds.append(seconds)
        campaign.table.append(target_metrics(objective, rows, catalogue))
        if out is not None:
            payload = {
                "target": objective.target,
                "objective": {"quantity": objective.quantity, "density_weight": objective.density_weight},
                "method": method.settings(),
                "evaluation": evaluator.settings(),
                "metrics": campaign.table[-1],
                "seconds": seconds,
                "proposals": rows,
            }
            write_json(out / f"target_{k}.json", payload)
    return campaign


class ResumeMismatch(ValueError):
    """An output folder holds work units of another request (target, method, model or settings)."""


def request(method: DesignMethod, objective: TargetObjective, evaluator: Evaluator) -> dict[str, Any]:
    """What a unit's result depends on besides its unit (n, seed): objective, method and evaluation
    settings, as plain JSON values."""
    payload = {
        "objective": {
            "quantity": objective.quantity,
            "target": objective.target,
            "density_weight": objective.density_weight,
        },
        "method": method.settings(),
        "evaluation": evaluator.settings(),
    }
    return json.loads(json.dumps(plain_json(payload)))


def unit_path(out: Path, unit: WorkUnit) -> Path:
    """The JSON file of a unit's result."""
    return out / "units" / f"{unit.key}.json"


def write_unit(out: Path, unit: WorkUnit, result: dict[str, Any], asked: dict[str, Any]) -> None:
    """Write a unit's arrays (npz) and then its JSON with the request ``asked`` (atomically; its presence
    marks the unit done)."""
    path = unit_path(out, unit)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = path.with_suffix(".npz")
    tmp = arrays.with_name(arrays.stem + ".tmp.npz")
    np.savez_compressed(tmp, **result["arrays"])
    tmp.replace(arrays)
    payload = {key: value for key, value in result.items() if key != "arrays"}
    write_json(path, {**payload, "unit": unit.__dict__, "request": asked})


def read_unit(out: Path, unit: WorkUnit, asked: dict[str, Any]) -> dict[str, Any] | None:
    """A unit's stored result, None when there is none (or an interrupted write left only part of it).

    Raises ResumeMismatch when the stored unit was made for another unit (n, seed) or request ``asked``:
    resuming it would report another campaign's numbers as this one's.
    """
    path = unit_path(out, unit)
    if not path.exists() or not path.with_suffix(".npz").exists():
        return None
    payload = json.loads(path.read_text())
    stored = {"unit": payload.get("unit"), **(payload.get("request") or {})}
    wanted = {"unit": unit.__dict__, **asked}
    if stored != wanted:
        differs = sorted(key for key in wanted if stored.get(key) != wanted[key])
        raise ResumeMismatch(
            f"{out} already holds {unit.key} of another request (differs in: {', '.join(differs)}); "
            "give another output folder or delete it"
        )
    with np.load(path.with_suffix(".npz")) as stored:
        payload["arrays"] = {name: stored[name] for name in stored.files}
    return payload
