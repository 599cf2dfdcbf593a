"""Material laws at Gauss points (``base.MaterialLaw``); one module per law."""

from .base import GaussResponse, MaterialLaw, State
from .j2_plastic import J2Plastic
from .linear_elastic import IsotropicOperator, LinearElastic, isotropic_tangent, lame, reference_matrices
from .neo_hookean import NeoHookean

__all__ = [
    "GaussResponse",
    "IsotropicOperator",
    "J2Plastic",
    "LinearElastic",
    "MaterialLaw",
    "NeoHookean",
    "State",
    "isotropic_tangent",
    "lame",
    "reference_matrices",
]
