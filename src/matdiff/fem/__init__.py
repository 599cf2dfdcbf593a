"""Batched matrix-free voxel FEM: bulk modulus (affine BC), periodic homogenization, multigrid PCG,
direct oracle, the material-law interface at Gauss points (``laws``), and seed B's nonlinear curves (Newton,
load paths and their adjoint: ``newton``, ``curves``).

Leaf library: imports nothing from the rest of matdiff. See SPEC section 3 and docs/architecture.md.
"""

from .curves import NonlinearResult, strain_energy_curve, stress_displacement_curve
from .elements import element_sizes
from .functions import AffineEnergy, PeriodicStiffness
from .laws import (
    GaussResponse,
    IsotropicOperator,
    J2Plastic,
    LinearElastic,
    MaterialLaw,
    NeoHookean,
    lame,
    reference_matrices,
)
from .newton import NewtonStatus, Tension
from .operators import ElementOperator
from .options import SolveOptions
from .problems import FEMSolution, SolveStatus, WarmStart, solve_displacement
from .properties import bulk_modulus, homogenized_stiffness
from .solvers import ConvergenceError

__all__ = [
    "AffineEnergy",
    "ConvergenceError",
    "ElementOperator",
    "FEMSolution",
    "GaussResponse",
    "IsotropicOperator",
    "J2Plastic",
    "LinearElastic",
    "MaterialLaw",
    "NeoHookean",
    "NewtonStatus",
    "NonlinearResult",
    "PeriodicStiffness",
    "SolveOptions",
    "SolveStatus",
    "WarmStart",
    "bulk_modulus",
    "element_sizes",
    "homogenized_stiffness",
    "lame",
    "reference_matrices",
    "solve_displacement",
    "strain_energy_curve",
    "stress_displacement_curve",
    "Tension",
]
