"""Batched matrix-free voxel FEM: bulk modulus (affine BC), periodic homogenization, multigrid PCG,
direct oracle, and the material-law interface at Gauss points (``laws``).

Leaf library: imports nothing from the rest of matdiff. See SPEC section 3 and docs/architecture.md.
"""

from .elements import element_sizes
from .functions import AffineEnergy, PeriodicStiffness
from .laws import GaussResponse, IsotropicOperator, LinearElastic, MaterialLaw, lame, reference_matrices
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
    "LinearElastic",
    "MaterialLaw",
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
]
