"""Evaluation: design campaigns for any design method, re-evaluation on fresh microstructures, refinement
after backprojection, seed A's metrics, target selection, prior quality and report files (SPEC 6)."""

from matdiff.evaluation.campaign import (
    CampaignResult,
    Evaluator,
    ResumeMismatch,
    WorkUnit,
    plan_units,
    run_campaign,
)
from matdiff.evaluation.executors import Executor, LocalExecutor
from matdiff.evaluation.metrics import chunk_coverage, frac_within, margin_table, relative_error
from matdiff.evaluation.quality import prior_quality
from matdiff.evaluation.reevaluate import (
    quantity_of_fields,
    quantity_of_properties,
    reevaluate,
    select_targets,
)
from matdiff.evaluation.refine import Refinement, refine_designs

__all__ = [
    "CampaignResult",
    "Evaluator",
    "Executor",
    "LocalExecutor",
    "Refinement",
    "ResumeMismatch",
    "WorkUnit",
    "chunk_coverage",
    "frac_within",
    "margin_table",
    "plan_units",
    "prior_quality",
    "quantity_of_fields",
    "quantity_of_properties",
    "reevaluate",
    "refine_designs",
    "relative_error",
    "run_campaign",
    "select_targets",
]
