"""The material-law interface: a constitutive law evaluated at the Gauss points of every element.

Modelled on torch-fem's ``Material.step(strain increment, state) -> (stress, state, tangent)`` and JAX-FEM's
constitutive functions: a law maps the displacement gradient at the Gauss points, and the history variables
stored per Gauss point, to the stress, the consistent tangent d stress / d grad u, the new history and, where
it exists, the energy density. Everything else is shared by all laws: ``elements.element_matrices`` turns the
tangents into element matrices (an ``operators.ElementOperator``, which PCG and multigrid solve with),
``elements.internal_forces`` the stresses into nodal forces. A new law is a new module in this package.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

State = dict[str, torch.Tensor]
"""History variables per Gauss point, each (B, n_el, n_gauss, ...); empty for a law without history."""


@dataclass
class GaussResponse:
    """A law's answer at the Gauss points, tensors in array axis order (``elements``).

    stress: (B, n_el, n_gauss, d, d) in GPa (Cauchy in small strain, first Piola-Kirchhoff in finite strain);
    tangent: d stress / d grad u, (B, n_el, n_gauss or 1, d, d, d, d) in GPa; state: the new history
    (``State``); energy: a potential density (B, n_el, n_gauss) in GPa whose gradient w.r.t. grad u is the
    stress (the strain energy of an elastic law, the incremental potential of a step of a plastic one), or
    None.
    """

    stress: torch.Tensor
    tangent: torch.Tensor
    state: State
    energy: torch.Tensor | None = None


class MaterialLaw(ABC):
    """A constitutive law with per-element parameters, evaluated at Gauss points of every element."""

    dim: int

    def initial_state(self, grad_u: torch.Tensor) -> State:
        """History of the undeformed body for Gauss-point fields shaped like grad_u (B, n_el, n_gauss, d, d):
        none unless the law keeps some."""
        return {}

    @abstractmethod
    def step(self, grad_u: torch.Tensor, state: State) -> GaussResponse:
        """Stress, tangent, new history and energy density at the Gauss points for the displacement gradient
        grad_u (B, n_el, n_gauss, d, d), from the history `state` of the last converged step."""
