"""Material laws at Gauss points (``base.MaterialLaw``); one module per law."""

from .base import GaussResponse, MaterialLaw, State
from .linear_elastic import IsotropicOperator, LinearElastic, isotropic_tangent, lame, reference_matrices

__all__ = [
    "GaussResponse",
    "IsotropicOperator",
    "LinearElastic",
    "MaterialLaw",
    "State",
    "isotropic_tangent",
    "lame",
    "reference_matrices",
]
