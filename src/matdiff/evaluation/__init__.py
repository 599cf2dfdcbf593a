"""Evaluation: re-evaluate backprojected designs on fresh microstructures and score them (SPEC 6)."""

from matdiff.evaluation.campaign import Campaign, Proposal, run_campaign
from matdiff.evaluation.metrics import chunk_coverage, frac_within, margin_table, relative_error
from matdiff.evaluation.quality import prior_quality
from matdiff.evaluation.reevaluate import (
    Design,
    bulk_modulus_of_fields,
    reevaluate_bulk_modulus,
    select_targets,
)

__all__ = [
    "Campaign",
    "Design",
    "Proposal",
    "bulk_modulus_of_fields",
    "chunk_coverage",
    "frac_within",
    "margin_table",
    "prior_quality",
    "reevaluate_bulk_modulus",
    "relative_error",
    "run_campaign",
    "select_targets",
]
