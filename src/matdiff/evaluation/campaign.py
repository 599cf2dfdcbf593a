"""Design campaigns: any design method, any target objectives, one plan, resume, evaluation and metrics.

A campaign asks a ``matdiff.methods`` design method for n designs per target objective, in work units of at
most ``batch`` designs (unit seed = seed + 1000 * target index + chunk index, so a unit's result does not
depend on which units ran before or where). Each unit's designs are evaluated:

- the "generated" stage: the objective's FEM quantity of the generated particle field itself;
- particle designs (``ParticleDesign``): re-evaluated as the mean over ``realizations`` fresh random
  microstructures (stochastic particle count, SPEC 6);
- image designs (``ImageDesign``): the FEM quantity of the design itself.

With ``refine`` (``evaluation.refine.Refinement``), a refinement stage follows for scalar bulk-modulus
targets: every valid particle design is moved toward the target within its catalogue neighbourhood on common
random microstructures of the refinement's own seed stream, and every changed design is re-evaluated on fresh
microstructures of yet another stream (``AFTER_STREAM``), so its reported value comes from microstructures the
refinement did not see. The row then describes the final design and keeps the original's columns and values
under ``before_*`` (identical to a campaign without refinement); the table gains ``*_before`` metrics. The
stage is stored per unit beside it (``units/<unit>.refined.json``), so switching it on for a finished folder
costs only the refinement.

Rows (one per design) carry the design, both values, the relative error to the target and the method's own
columns; when a method returns the fitted materials (``arrays["fitted_materials"]``, (n, 2, 3) normalized),
also ``value_free``: the design's radius and volume fraction with those materials instead of the catalogue's,
on the same microstructures (seed A's table 5 "free" stage). With an output folder every finished unit is
written at once (``units/``), and a re-run with the same folder reuses the units found there; a finished
target is also written whole (``target_K.json``). The executor (``evaluation.executors``) decides where units
run.
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
from tqdm.auto import tqdm

from matdiff.evaluation.executors import Executor, LocalExecutor
from matdiff.evaluation.metrics import frac_within, margin_table
from matdiff.evaluation.reevaluate import (
    quantity_of_fields,
    quantity_of_properties,
    reevaluate,
    unsolved_reason,
)
from matdiff.evaluation.refine import Refinement, refine_designs
from matdiff.evaluation.report import plain_json, write_json
from matdiff.guidance import TargetObjective
from matdiff.materials import Catalogue, Properties
from matdiff.methods import DesignMethod, ImageDesign, Proposals
from matdiff.microstructure import ParticleDesign

SEED_STRIDE = 1000
"""Unit seed = seed + SEED_STRIDE * target index + chunk index."""
AFTER_STREAM = 1
"""Second seed word of the re-evaluation of refined designs, ``default_rng((unit seed, AFTER_STREAM))``:
neither the first re-evaluation's stream (unit seed) nor the refinement's (``refine.REFINE_STREAM``)."""
BEFORE_KEYS = (
    "valid",
    "reason",
    "matrix",
    "particle",
    "matrix_row",
    "particle_row",
    "radius",
    "volume_fraction",
    "density",
    "value",
    "value_std",
    "relative_error",
)
"""Row columns of the original design kept as ``before_<key>`` when a refinement changes the row."""


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
        self,
        designs: Sequence,
        quantity: str,
        seed: int | tuple[int, ...],
        materials: Sequence[np.ndarray | None] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Mean, std (n, *shape) and failure reasons ("" if none) of every design's quantity; particle designs
        on microstructures of ``np.random.default_rng(seed)``, with ``materials`` ((2, 3) normalized values
        per design) instead of their catalogue rows where given."""
        if designs and all(isinstance(d, ImageDesign) for d in designs):
            values = quantity_of_properties(_stacked(designs), quantity, self.device)
            return values, np.zeros_like(values), [unsolved_reason(v[None]) for v in values]
        if any(d is not None and not isinstance(d, ParticleDesign) for d in designs):
            raise TypeError("a unit's designs must all be ParticleDesign (or None) or all ImageDesign")
        rng = np.random.default_rng(seed)
        return reevaluate(
            designs,
            self.dim,
            self.size,
            rng,
            self.realizations,
            self.catalogue,
            self.device,
            quantity,
            materials,
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
    fitted = proposals.arrays.get("fitted_materials")
    if fitted is not None:  # seed A's "free" stage: the fitted materials on the same microstructures
        free = evaluator.designs(proposals.designs, objective.quantity, unit.seed, list(fitted))[0]
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
                **({"value_free": free[i].tolist()} if fitted is not None else {}),
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


def design_of(row: dict[str, Any]) -> ParticleDesign | None:
    """The particle design of a valid row (``design_columns``); None for invalid rows and image designs."""
    if not row.get("valid") or row.get("matrix_row", -1) < 0:
        return None
    return ParticleDesign(
        int(row["matrix_row"]), int(row["particle_row"]), float(row["radius"]), float(row["volume_fraction"])
    )


def refinable(objective: TargetObjective, rows: list[dict[str, Any]]) -> bool:
    """Whether the refinement stage applies: a scalar bulk-modulus target and particle-design rows."""
    scalar = objective.quantity == "bulk_modulus" and np.ndim(objective.target) == 0
    return scalar and all("matrix_row" in r for r in rows)


def refine_unit(
    objective: TargetObjective,
    unit: WorkUnit,
    rows: list[dict[str, Any]],
    evaluator: Evaluator,
    refinement: Refinement,
) -> dict[str, Any]:
    """The refinement stage of one unit's rows: {"rows": per row the refinement columns and, for a changed
    design, its design columns and fresh re-evaluation (stream (unit seed, AFTER_STREAM)), "seconds",
    "solves"} (JSON-able)."""
    start = time.perf_counter()
    result = refine_designs(
        [design_of(r) for r in rows],
        float(objective.target),
        refinement,
        evaluator.catalogue,
        evaluator.dim,
        evaluator.size,
        unit.seed,
        objective.density_weight,
        evaluator.device,
    )
    seconds = {"refinement": time.perf_counter() - start}
    changed = [i for i, r in enumerate(result.designs) if r.changed]
    start = time.perf_counter()
    if changed:
        designs = [result.designs[i].design for i in changed]
        value, std, failures = evaluator.designs(designs, objective.quantity, (unit.seed, AFTER_STREAM))
        errors = objective.relative_error(value)
    seconds["reevaluation_refined"] = time.perf_counter() - start
    stage_rows = []
    for i, refined in enumerate(result.designs):
        extra: dict[str, Any] = {}
        if refined.changed:
            j = changed.index(i)
            extra |= design_columns(refined.design, failures[j], evaluator.catalogue)
            extra |= {
                "value": value[j].tolist(),
                "value_std": std[j].tolist(),
                "relative_error": float(errors[j]),
            }
        extra |= {
            "refined": refined.changed,
            "refine_note": refined.note,
            "refine_K_before": refined.K_before,
            "refine_K_after": refined.K_after,
            "refine_candidates": refined.candidates,
        }
        stage_rows.append(extra)
    return {"rows": stage_rows, "seconds": seconds, "solves": result.solves}


def with_refinement(rows: list[dict[str, Any]], stage_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the final designs: each row updated by its refinement columns, the original's ``BEFORE_KEYS``
    kept as ``before_<key>``."""
    return [
        {**row, **extra, **{f"before_{key}": row[key] for key in BEFORE_KEYS}}
        for row, extra in zip(rows, stage_rows, strict=True)
    ]


def refined_path(out: Path, unit: WorkUnit) -> Path:
    """The JSON file of a unit's refinement stage."""
    return out / "units" / f"{unit.key}.refined.json"


def _stage_request(unit: WorkUnit, rows: list[dict[str, Any]], refinement: Refinement) -> dict[str, Any]:
    """What a unit's refinement stage depends on: unit, refinement settings and the designs it refined."""
    designs = [
        [r["valid"], r["matrix_row"], r["particle_row"], r["radius"], r["volume_fraction"]] for r in rows
    ]
    payload = {"unit": unit.__dict__, "refinement": refinement.settings(), "designs": designs}
    return json.loads(json.dumps(plain_json(payload)))


def refine_stage(
    objective: TargetObjective,
    unit: WorkUnit,
    result: dict[str, Any],
    evaluator: Evaluator,
    refinement: Refinement,
    out: Path | None,
) -> dict[str, Any]:
    """A unit's result with its refinement stage merged in (rows, seconds); the stage is read from ``out``
    when stored for the same unit, settings and designs, else computed (and written)."""
    rows = result["rows"]
    if not refinable(objective, rows):
        return result
    asked = _stage_request(unit, rows, refinement)
    stage = None
    if out is not None and refined_path(out, unit).exists():
        stored = json.loads(refined_path(out, unit).read_text())
        stage = stored if stored.get("request") == asked else None
    if stage is None:
        stage = refine_unit(objective, unit, rows, evaluator, refinement)
        if out is not None:
            write_json(refined_path(out, unit), {**stage, "request": asked})
    seconds = dict(result["seconds"], **stage["seconds"])
    return {**result, "rows": with_refinement(rows, stage["rows"]), "seconds": seconds}


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
        metrics["pairs"] = len({(r["matrix_row"], r["particle_row"]) for r in rows if r["valid"]})
        for key in ("fitting_variance", "material_distance"):  # seed A's table 6 measures of the fits
            fits = np.array([_number(r.get(key)) for r in rows], dtype=float)
            if np.isfinite(fits).any():
                metrics[f"mean_{key}"] = float(np.nanmean(fits))
        for stage in ("generated", "free"):
            values = np.array([_number(r.get(f"value_{stage}")) for r in rows], dtype=float)
            if np.isfinite(values).any():
                errors = objective.relative_error(values)
                metrics |= {f"frac@{m:.0%}_{stage}": frac_within(errors, m) for m in (0.01, 0.05)}
        if "before_value" in rows[0]:
            metrics["refined"] = sum(bool(r["refined"]) for r in rows)
            before = [{key: r[f"before_{key}"] for key in BEFORE_KEYS} for r in rows]
            for key, number in target_metrics(objective, before, catalogue).items():
                if key not in ("target_GPa", "n"):
                    metrics[f"{key}_before"] = number
    else:
        errors = np.array([_valid_number(r, "relative_error") for r in rows], dtype=float)
        metrics |= {f"frac@{m:.0%}": frac_within(errors, m) for m in (0.01, 0.05)}
    return metrics


def _number(value: Any) -> float:
    """A stored scalar as float; None (JSON null) and lists as NaN."""
    return float(value) if isinstance(value, int | float) else float("nan")


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
    refine: Refinement | None = None,
) -> CampaignResult:
    """n designs per objective from ``method``, evaluated by ``evaluator``; see the module docstring.

    ``out``: folder for unit results (resume) and per-target results; None keeps everything in memory.
    ``log(message)`` is told about reused units and finished targets. ``refine``: the refinement stage's
    settings, None for none.
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
    if refine is not None:
        refine.check(evaluator.catalogue)
        for unit in tqdm(units, desc="refinement", unit="unit"):
            objective = objectives[unit.target]
            results[unit.key] = refine_stage(objective, unit, results[unit.key], evaluator, refine, out)
    return assemble(objectives, units, results, evaluator.catalogue, out, reused, method, evaluator, refine)


def assemble(
    objectives: list[TargetObjective],
    units: list[WorkUnit],
    results: dict[str, dict[str, Any]],
    catalogue: Catalogue,
    out: Path | None,
    reused: list[str],
    method: DesignMethod,
    evaluator: Evaluator,
    refine: Refinement | None = None,
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
                "refinement": refinement_settings(refine),
                "metrics": campaign.table[-1],
                "seconds": seconds,
                "proposals": rows,
            }
            write_json(out / f"target_{k}.json", payload)
    return campaign


def refinement_settings(refine: Refinement | None) -> dict[str, Any]:
    """What a campaign record says of its refinement stage: {"enabled": False} or enabled and its settings."""
    return {"enabled": False} if refine is None else {"enabled": True, **refine.settings()}


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
