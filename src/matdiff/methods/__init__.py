"""Design methods: each turns a target objective and a count into proposed designs (``DesignMethod``).

- ``GuidedDiffusion`` (seed A): loss-guided sampling of a particle prior, then backprojection.
- ``NoiseSpace`` (seed B): L-BFGS on the DDIM input noise of a style prior, through the tanh projection.

A new method (Bayesian optimization, conditional sampling) is one module with a class that has ``name``,
``settings()`` and ``propose(objective, n, seed) -> Proposals``; ``matdiff.evaluation.campaign`` plans,
runs, re-evaluates, scores and reports any of them the same way.
"""

from matdiff.methods.base import DesignMethod, ImageDesign, Proposals
from matdiff.methods.guided import GuidedDiffusion
from matdiff.methods.noise_space import NoiseSpace

__all__ = ["DesignMethod", "GuidedDiffusion", "ImageDesign", "NoiseSpace", "Proposals"]
