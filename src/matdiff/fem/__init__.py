"""Batched matrix-free voxel FEM: bulk modulus (affine BC), periodic homogenization, multigrid PCG,
direct oracle.

Leaf library: imports nothing from the rest of matdiff. See SPEC section 3 and docs/architecture.md.
"""

from .elements import lame, reference_matrices
from .functions import AffineEnergy, PeriodicStiffness
from .problems import FEMSolution, WarmStart, solve_displacement
from .properties import bulk_modulus, homogenized_stiffness
from .solvers import ConvergenceError

__all__ = [
    "AffineEnergy",
    "ConvergenceError",
    "FEMSolution",
    "PeriodicStiffness",
    "WarmStart",
    "bulk_modulus",
    "homogenized_stiffness",
    "lame",
    "reference_matrices",
    "solve_displacement",
]
