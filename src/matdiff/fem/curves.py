"""Seed B's nonlinear responses (SPEC 7): the strain-energy curve of a Neo-Hookean microstructure and the
stress-displacement curve of a J2-plastic one under uniaxial tension, differentiable, batched over designs.

Fields are images (B, H, W) whose row 0 is the top (loaded) edge and column 0 the left edge, on the unit
square (voxels of side 1 / max(H, W)); they are flipped into the solver's physical row order (``newton``).

Gradients:
- energy: at equilibrium under prescribed displacements, dPi/dtheta is the explicit partial derivative
  (dPi/du = 0 on the free dofs, the prescribed dofs do not depend on theta), so the energy is recomputed
  differentiably at the converged, detached displacement: no adjoint solve.
- stress curve: a discrete adjoint through the whole load path (``PathAdjoint``), a reverse sweep over the
  increments with one tangent solve each; it is generic over laws (it differentiates ``law.step`` with
  autograd at each converged increment), and keeps only the displacements and histories of the forward
  path (``newton.LoadPath``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .elements import element_matrices, element_sizes, quadrature_weight
from .laws.base import GaussResponse, MaterialLaw
from .laws.j2_plastic import J2Plastic
from .laws.linear_elastic import check_inputs
from .laws.neo_hookean import NeoHookean
from .newton import (
    LoadPath,
    NewtonStatus,
    Tension,
    gauss_gradient,
    nodal_forces,
    solve_load_path,
    tangent_options,
)
from .operators import ElementOperator
from .options import SolveOptions
from .solvers import ConvergenceError, LinearSystem

#: seed B's load steps (SPEC 7): hyperelastic top displacements d = 0.05, ..., 0.50
SEED_B_ENERGY_DISPLACEMENTS = tuple(0.05 * i for i in range(1, 11))
#: seed B's elasto-plastic increments: d_i = 0.0005 i, i = 1..20
SEED_B_STRESS_DISPLACEMENTS = tuple(0.0005 * i for i in range(1, 21))


@dataclass
class NonlinearResult:
    """values (B, n) per load step; displacement (B, 2, H + 1, W + 1) nodal (u_x, u_y) at the last step in
    image orientation (row 0 = top nodes), unit lengths; status: the per-sample ``NewtonStatus``."""

    values: torch.Tensor
    displacement: torch.Tensor
    status: NewtonStatus


def check_displacements(displacements: Sequence[float] | torch.Tensor) -> tuple[float, ...]:
    """The load steps as floats; ValueError unless a non-empty 1-D sequence of finite numbers."""
    try:
        ds = tuple(float(d) for d in torch.as_tensor(displacements, dtype=torch.float64).reshape(-1))
        shaped = torch.as_tensor(displacements).ndim == 1
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"displacements must be a 1-D sequence of numbers: {err}") from err
    if not shaped or not ds or not all(math.isfinite(d) for d in ds):
        raise ValueError(
            f"displacements must be a non-empty 1-D sequence of finite numbers, got {displacements!r}"
        )
    return ds


def check_fields(E: torch.Tensor, nu: torch.Tensor, **others: torch.Tensor) -> None:
    """ValueError unless E, nu (and `others`) are 2-D image batches (B, H, W) of valid properties."""
    if check_inputs(E, nu, "strain") != 2:
        raise ValueError(
            f"seed B's nonlinear examples are 2-D: fields must be (B, H, W), got {tuple(E.shape)}"
        )
    for name, t in others.items():
        if not isinstance(t, torch.Tensor) or t.shape != E.shape:
            raise ValueError(f"{name} must be a tensor shaped like E {tuple(E.shape)}")
        if not bool(torch.isfinite(t).all()) or not bool((t > 0).all()):
            raise ValueError(f"{name} must be finite and > 0")


def physical(t: torch.Tensor) -> torch.Tensor:
    """An image field (B, H, W) (row 0 = top) in the solver's row order (row 0 = bottom), float64."""
    return t.flip(1).to(torch.float64)


def image_displacement(u: torch.Tensor) -> torch.Tensor:
    """Nodal (u_y, u_x) (B, 1, 2, H + 1, W + 1) in physical row order -> (u_x, u_y) (B, 2, H + 1, W + 1) with
    row 0 = top nodes."""
    return u[:, 0].flip(-2)[:, [1, 0]]


def settle(path: LoadPath, values: torch.Tensor, options: SolveOptions, what: str) -> torch.Tensor:
    """values with NaN rows for the samples whose path failed; ConvergenceError instead for on_failure
    "raise"."""
    ok = path.status.converged.to(values.device)
    if bool(ok.all()):
        return values
    if options.on_failure == "raise":
        i = int((~path.status.converged).nonzero()[0, 0])
        raise ConvergenceError(
            f"{what}: sample {i}: {path.status.message[i]}; SolveOptions(on_failure='nan') gives NaN values"
        )
    return torch.where(ok[:, None], values, torch.full_like(values, torch.nan))


def strain_energy_curve(
    E: torch.Tensor,
    nu: torch.Tensor,
    displacements: Sequence[float] | torch.Tensor = SEED_B_ENERGY_DISPLACEMENTS,
    *,
    options: SolveOptions | None = None,
    return_result: bool = False,
) -> torch.Tensor | NonlinearResult:
    """Total strain energy (B, n) of Neo-Hookean microstructures at each top displacement (seed B sec. 3.3).

    E (Young's modulus), nu: (B, H, W) per element, images with row 0 = top edge; plane strain; bottom edge
    clamped, top edge u_y = d (unit square, tension for d > 0) with u_x free, sides free; each step solved
    by Newton independently (no history). The energy is the integral of psi over the undeformed square, in
    E's unit x length^2; differentiable w.r.t. E and nu (explicit partial derivative at equilibrium). options:
    linear solver and on_failure ("raise", else NaN rows for samples whose Newton failed).
    """
    check_fields(E, nu)
    ds, options = check_displacements(displacements), options or SolveOptions()
    h = element_sizes(E.shape[1:])
    Ep, nup = physical(E), physical(nu)
    with torch.no_grad():
        law = NeoHookean.from_young(Ep, nup)
        path = solve_load_path(law, Tension(tuple(E.shape[1:]), "clamped"), ds, h, options, E.shape[0],
                               torch.float64, E.device)  # fmt: skip
    law = NeoHookean.from_young(Ep, nup)  # differentiable in E, nu; the displacements stay detached
    w = quadrature_weight(h)
    energy = torch.stack([w * law.step(gauss_gradient(u, h), {}).energy.sum((1, 2)) for u in path.u], 1)
    values = settle(path, energy, options, "strain_energy_curve").to(E.dtype)
    if return_result:
        return NonlinearResult(values, image_displacement(path.u[-1]).to(E.dtype), path.status)
    return values


def mean_stress_yy(response: GaussResponse) -> torch.Tensor:
    """Area-averaged sigma_yy (B,) of a response on a regular grid (equal Gauss weights; axis 0 is y)."""
    return response.stress[..., 0, 0].mean((1, 2))


@dataclass
class PathProblem:
    """What the path adjoint needs: the law of the parameters, the boundary conditions, the load steps, the
    output per step, the voxel sides and the solver options."""

    law_of: Callable[..., MaterialLaw]
    bc: Tension
    displacements: tuple[float, ...]
    output: Callable[[GaussResponse], torch.Tensor]
    h: tuple[float, ...]
    options: SolveOptions

    def solve(self, params: Sequence[torch.Tensor]) -> LoadPath:
        """The forward load path for parameters (B, H, W) each, float64, physical row order."""
        p = params[0]
        return solve_load_path(self.law_of(*params), self.bc, self.displacements, self.h, self.options,
                               p.shape[0], p.dtype, p.device, self.output)  # fmt: skip

    def tangent_solve(self, tangent: torch.Tensor, rhs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """K^-1 rhs on the free dofs for Gauss-point tangents (B, n_el, n_gauss, 2, 2, 2, 2), rhs (B, 1, 2,
        *nodes) (K is symmetric for the laws here: hyperelastic, or associative plasticity)."""
        op = ElementOperator(element_matrices(tangent, self.h), self.bc.el_shape, False)
        options = tangent_options(self.options, self.bc.el_shape, tangent.device)
        x, _ = LinearSystem(op, options, mask=mask).solve(mask * rhs)
        return x

    def gradient(self, params: Sequence[torch.Tensor], path: LoadPath, grad_values: torch.Tensor):
        """d(sum grad_values * values)/d params by the reverse sweep over the increments: with the cotangent
        h_bar of the history after increment k, J_k = grad_values_k . output_k + h_bar . h_k, the adjoint
        K_k lambda = dJ_k/du (free dofs), and then dJ_k/d(params, h_{k-1}) - lambda . dR_k/d(params, h_{k-1})
        at the converged, detached u_k."""
        mask = self.bc.mask(params[0].dtype, params[0].device)
        grads = [torch.zeros_like(p) for p in params]
        h_bar: dict[str, torch.Tensor] = {}
        ok = path.status.converged.to(grad_values.device)
        grad_values = torch.where(ok[:, None], grad_values, torch.zeros_like(grad_values))
        for k in reversed(range(len(self.displacements))):
            with torch.enable_grad():
                ps = [p.detach().requires_grad_(True) for p in params]
                state = {key: v.detach().requires_grad_(True) for key, v in path.states[k].items()}
                u = path.u[k].detach().requires_grad_(True)
                response = self.law_of(*ps).step(gauss_gradient(u, self.h), state)
                J = (grad_values[:, k] * self.output(response)).sum()
                J = J + sum((h_bar[key] * response.state[key]).sum() for key in h_bar)
                (g_u,) = torch.autograd.grad(J, u, retain_graph=True)
                lam = self.tangent_solve(response.tangent.detach(), g_u, mask)
                forces = nodal_forces(response.stress, self.bc.el_shape, self.h)
                total = J - (lam * mask * forces).sum()
                inputs = [*ps, *state.values()]
                parts = torch.autograd.grad(total, inputs, allow_unused=True)
            for g, part in zip(grads, parts[: len(ps)], strict=True):
                if part is not None:
                    g += part
            h_bar = {key: part for key, part in zip(state, parts[len(ps) :], strict=True) if part is not None}
        return [torch.where(ok.view(-1, 1, 1), g, torch.zeros_like(g)) for g in grads]


class PathAdjoint(torch.autograd.Function):
    """The values (B, n) of a solved load path of `problem` at `params`, with the discrete path adjoint
    (``PathProblem.gradient``) as their backward."""

    @staticmethod
    def forward(ctx, problem: PathProblem, path: LoadPath, *params: torch.Tensor) -> torch.Tensor:
        ctx.problem, ctx.path = problem, path
        ctx.save_for_backward(*params)
        return path.values.clone()

    @staticmethod
    def backward(ctx, grad_values: torch.Tensor):
        params = ctx.saved_tensors
        grads = ctx.problem.gradient(params, ctx.path, grad_values)
        needs = ctx.needs_input_grad[2:]
        return (None, None, *(g if need else None for g, need in zip(grads, needs, strict=True)))


def stress_displacement_curve(
    E: torch.Tensor,
    nu: torch.Tensor,
    sigma_0: torch.Tensor,
    displacements: Sequence[float] | torch.Tensor = SEED_B_STRESS_DISPLACEMENTS,
    *,
    options: SolveOptions | None = None,
    return_result: bool = False,
) -> torch.Tensor | NonlinearResult:
    """Area-averaged sigma_yy (B, n) of J2-plastic microstructures after each top-displacement increment
    (seed B sec. 3.4).

    E, nu, sigma_0 (yield stress): (B, H, W) per element, images with row 0 = top edge; small strain, plane-
    strain elasticity with genopt's 2-D deviator (``laws.j2_plastic``); bottom edge u_y = 0, bottom-left
    node u_x = 0, top edge u_y = d with u_x free; increments applied in order with history. Stresses in the
    unit of E and sigma_0 (seed B: MPa). Differentiable w.r.t. E, nu and sigma_0 through the discrete path
    adjoint. options: linear solver and on_failure ("raise", else NaN rows for samples whose Newton failed).
    """
    check_fields(E, nu, sigma_0=sigma_0)
    ds, options = check_displacements(displacements), options or SolveOptions()
    problem = PathProblem(J2Plastic.from_young, Tension(tuple(E.shape[1:]), "roller"), ds, mean_stress_yy,
                          element_sizes(E.shape[1:]), options)  # fmt: skip
    params = [physical(t) for t in (E, nu, sigma_0)]
    with torch.no_grad():
        path = problem.solve(params)
    values = PathAdjoint.apply(problem, path, *params)
    values = settle(path, values, options, "stress_displacement_curve").to(E.dtype)
    if return_result:
        return NonlinearResult(values, image_displacement(path.u[-1]).to(E.dtype), path.status)
    return values
