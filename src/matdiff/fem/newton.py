"""Nonlinear quasi-static solves shared by every material law: uniaxial-tension boundary conditions, Newton
with a consistent tangent and a backtracking line search, and load stepping with history.

Grids here are in *physical* row order: array axis 0 is y and points up (row 0 is the bottom edge), axis 1 is
x; nodal fields are (B, 1, 2, H + 1, W + 1) with components (u_y, u_x) in that order (``elements``). The
public curve functions (``curves``) flip seed B's image rows (row 0 = top) into this order.

Each Newton iteration turns the law's Gauss-point tangents into element matrices (``elements``), solves the
masked tangent system with the project's solvers (``solvers.LinearSystem``: banded Cholesky, multigrid PCG
on the Galerkin levels of the element matrices, or SuperLU; ``SolveOptions.solver``) and backtracks (Armijo,
halving) on the law's potential where it has one (the Neo-Hookean energy; the convex incremental potential
of a J2 step, ``laws.j2_plastic``), else on the residual norm. A residual-norm line search stalled on J2
increments where a band yields at once (a digit-shaped sigma_0 field, first increment: residual ratio stuck
at 0.3 after 30 iterations); the potential's does not. A sample has converged when its free-dof residual is
at most ``tuning.NEWTON_RTOL`` times its internal-force norm; a sample that does not converge, or whose line
search fails, is reported per sample (``NewtonStatus``) and keeps no value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch

from .elements import displacement_gradient, element_matrices, internal_forces, quadrature_weight
from .grid import gather, scatter
from .laws.base import GaussResponse, MaterialLaw, State
from .operators import ElementOperator
from .options import SolveOptions
from .solvers import LinearSystem
from .tuning import (
    ARMIJO,
    LINE_SEARCH_HALVINGS,
    NEWTON_BANDED_ELEMENTS,
    NEWTON_MAXITER,
    NEWTON_RTOL,
    POTENTIAL_ROUNDING,
)

SUPPORTS = ("clamped", "roller")


@dataclass(frozen=True)
class Tension:
    """Uniaxial tension of a box of el_shape = (H, W) elements, physical row order: the top edge (node row H)
    has u_y = d and u_x free; the bottom edge is "clamped" (u = 0, seed B's hyperelastic example) or on
    "rollers" (u_y = 0 and the bottom-left node's u_x = 0, its elasto-plastic example); the sides are free."""

    el_shape: tuple[int, int]
    support: str = "clamped"

    def __post_init__(self) -> None:
        if self.support not in SUPPORTS:
            raise ValueError(f"support must be one of {SUPPORTS}, got {self.support!r}")

    def mask(self, dtype: torch.dtype, device) -> torch.Tensor:
        """Free-dof mask (1, 1, 2, H + 1, W + 1): 1 where the displacement is unknown."""
        m = torch.ones(2, self.el_shape[0] + 1, self.el_shape[1] + 1, dtype=dtype, device=device)
        m[0, -1] = 0  # top edge: u_y prescribed
        m[0, 0] = 0  # bottom edge: u_y = 0
        if self.support == "clamped":
            m[1, 0] = 0
        else:
            m[1, 0, 0] = 0
        return m[None, None]

    def stretch(self, d: float, dtype: torch.dtype, device) -> torch.Tensor:
        """The homogeneous stretch u_y = d y / H_box, u_x = 0 (1, 1, 2, H + 1, W + 1): the first step's Newton
        guess."""
        u = torch.zeros(1, 1, 2, self.el_shape[0] + 1, self.el_shape[1] + 1, dtype=dtype, device=device)
        rows = torch.linspace(0.0, d, self.el_shape[0] + 1, dtype=dtype, device=device)
        u[0, 0, 0] = rows[:, None]
        return u

    def prescribed(self, d: float, dtype: torch.dtype, device) -> torch.Tensor:
        """The prescribed displacement (1, 1, 2, H + 1, W + 1): u_y = d on the top edge, 0 elsewhere."""
        u = torch.zeros(1, 1, 2, self.el_shape[0] + 1, self.el_shape[1] + 1, dtype=dtype, device=device)
        u[0, 0, 0, -1] = d
        return u


def tangent_options(options: SolveOptions, el_shape: tuple[int, ...], device) -> SolveOptions:
    """The options of the tangent solves: solver "auto" becomes banded Cholesky on the CPU up to
    ``tuning.NEWTON_BANDED_ELEMENTS`` elements, multigrid PCG otherwise."""
    if options.solver != "auto":
        return options
    small = torch.device(device).type == "cpu" and math.prod(el_shape) <= NEWTON_BANDED_ELEMENTS
    return replace(options, solver="banded" if small else "mg")


def gauss_gradient(u: torch.Tensor, h: Sequence[float]) -> torch.Tensor:
    """grad u (B, n_el, n_gauss, 2, 2) at the Gauss points of a nodal field u (B, 1, 2, *nodes)."""
    return displacement_gradient(gather(u, False)[:, 0], h)


def nodal_forces(stress: torch.Tensor, el_shape: tuple[int, ...], h: Sequence[float]) -> torch.Tensor:
    """Internal nodal forces (B, 1, 2, *nodes) of Gauss-point stresses (B, n_el, n_gauss, 2, 2)."""
    return scatter(internal_forces(stress, h)[:, None], el_shape, False)


def select_state(state: State, idx: torch.Tensor) -> State:
    """The history of samples idx only."""
    return {k: v[idx] for k, v in state.items()}


def norm(x: torch.Tensor) -> torch.Tensor:
    """Euclidean norm per sample (B,) of a nodal field (B, ...), float64."""
    return torch.linalg.vector_norm(x.flatten(1).to(torch.float64), dim=1)


@dataclass
class NewtonStatus:
    """Per-sample record of a load path of n steps.

    converged (B,) bool: every step reached its tolerance; newton_iterations, linear_iterations (B, n) int64
    per step (linear: PCG iterations summed over the Newton iterations, 0 for SuperLU); residual (B, n)
    float64, the free-dof residual / internal-force norm reached; failed_step (B,) int64, the first step
    that failed (-1: none); message: per sample, why it failed ("" where it did not).
    """

    converged: torch.Tensor
    newton_iterations: torch.Tensor
    linear_iterations: torch.Tensor
    residual: torch.Tensor
    failed_step: torch.Tensor
    message: list[str] = field(default_factory=list)

    def reasons(self) -> list[str]:
        """Why each sample has no value: "" where every step converged."""
        return self.message


@dataclass
class StepOutcome:
    """One load step: displacement (B, 1, 2, *nodes), the law's response there, per-sample Newton and linear
    iterations (B,), residual ratio (B,) and failure text ("" where converged)."""

    u: torch.Tensor
    response: GaussResponse
    newton_iterations: torch.Tensor
    linear_iterations: torch.Tensor
    residual: torch.Tensor
    failure: list[str]


def newton_solve(
    law: MaterialLaw,
    state: State,
    mask: torch.Tensor,
    u_fixed: torch.Tensor,
    guess: torch.Tensor,
    h: Sequence[float],
    options: SolveOptions,
    skip: torch.Tensor | None = None,
) -> StepOutcome:
    """Equilibrium u = u_fixed + free part, f_int(u) = 0 on the free dofs of `mask`, for all B samples.

    guess: initial displacement (B, 1, 2, *nodes) (its fixed dofs are replaced by u_fixed); skip (B,) bool:
    samples not to solve (already failed; they keep the guess and are reported as such).
    """
    b, el_shape = guess.shape[0], tuple(m - 1 for m in guess.shape[3:])
    u = guess * mask + u_fixed
    skip = torch.zeros(b, dtype=torch.bool, device=u.device) if skip is None else skip.to(u.device)

    def evaluate(u: torch.Tensor) -> tuple[GaussResponse, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The response at u, the residual -f_int on the free dofs, |f_int| and the potential (B,) or None."""
        response = law.step(gauss_gradient(u, h), state)
        forces = nodal_forces(response.stress, el_shape, h)
        return response, -mask * forces, norm(forces), potential(response, h)

    response, r, scale, pot = evaluate(u)
    rnorm = norm(r)
    restart = ~skip & ~torch.isfinite(rnorm)  # the guess inverted an element: start from the fixed dofs only
    if bool(restart.any()):
        u = torch.where(restart.view(-1, 1, 1, 1, 1), u_fixed.expand_as(u), u)
        response, r, scale, pot = evaluate(u)
        rnorm = norm(r)
    newton = torch.zeros(b, dtype=torch.int64)
    linear = torch.zeros(b, dtype=torch.int64)
    failure = ["" if not s else "skipped: an earlier load step failed" for s in skip.tolist()]
    failed = skip.clone()
    for _ in range(NEWTON_MAXITER):
        done = (rnorm <= NEWTON_RTOL * scale) | ~torch.isfinite(rnorm)
        active = ~(done | failed)
        if not bool(active.any()):
            break
        idx = active.nonzero()[:, 0]
        cpu_idx = idx.cpu()
        op = ElementOperator(element_matrices(response.tangent[idx], h), el_shape, False)
        du_active, info = LinearSystem(op, options, mask=mask).solve(r[idx])
        newton[cpu_idx] += 1
        linear[cpu_idx] += info.iterations
        solved = info.converged.all(1)
        for i in idx[~solved].tolist():
            failed[i], failure[i] = True, "tangent solve did not converge (is the tangent positive definite?)"
        du = torch.zeros_like(u)
        du[idx] = torch.where(solved.view(-1, 1, 1, 1, 1), du_active, torch.zeros_like(du_active))
        pending = active & ~failed
        alpha = pending.to(u.dtype)
        slope = -(r * du).flatten(1).sum(1, dtype=torch.float64)  # dPi/dalpha at alpha = 0 (< 0: descent)
        for _ in range(LINE_SEARCH_HALVINGS):
            trial_u = u + alpha.view(-1, 1, 1, 1, 1) * du
            trial, trial_r, trial_scale, trial_pot = evaluate(trial_u)
            trial_norm = norm(trial_r)
            if pot is None:  # no potential: the residual norm must drop
                decrease = trial_norm <= (1.0 - ARMIJO * alpha) * rnorm
            else:  # Armijo on the potential, up to its rounding (near convergence it changes by ~|r|^2)
                decrease = trial_pot <= pot + ARMIJO * alpha * slope + POTENTIAL_ROUNDING * pot.abs()
            accept = pending & torch.isfinite(trial_norm) & decrease
            keep = accept.view(-1, 1, 1, 1, 1)
            u = torch.where(keep, trial_u, u)
            r = torch.where(keep, trial_r, r)
            rnorm, scale = torch.where(accept, trial_norm, rnorm), torch.where(accept, trial_scale, scale)
            pot = None if pot is None else torch.where(accept, trial_pot, pot)
            response = merge_response(response, trial, accept)
            pending = pending & ~accept
            if not bool(pending.any()):
                break
            alpha = torch.where(pending, 0.5 * alpha, alpha)
        for i in pending.nonzero()[:, 0].tolist():
            failed[i], failure[i] = True, f"line search failed after {LINE_SEARCH_HALVINGS} halvings"
    ratio = (rnorm / torch.where(scale > 0, scale, torch.ones_like(scale))).cpu()
    for i in (~failed & ~(rnorm <= NEWTON_RTOL * scale)).nonzero()[:, 0].tolist():
        failed[i] = True
        failure[i] = f"Newton did not converge in {NEWTON_MAXITER} iterations (residual ratio {ratio[i]:.1e})"
    return StepOutcome(u, response, newton, linear, ratio, failure)


def potential(response: GaussResponse, h: Sequence[float]) -> torch.Tensor | None:
    """The integral (B,) float64 of the law's potential density, whose gradient is the internal force vector:
    the total strain energy of a hyperelastic law, the incremental potential of a J2 step; None without
    one."""
    if response.energy is None:
        return None
    return response.energy.flatten(1).sum(1, dtype=torch.float64) * quadrature_weight(h)


def merge_response(old: GaussResponse, new: GaussResponse, take: torch.Tensor) -> GaussResponse:
    """The response of `new` for samples where take (B,) is True, of `old` elsewhere."""

    def pick(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
        if a is None or b is None:
            return None
        return torch.where(take.view(-1, *(1,) * (a.ndim - 1)), b, a)

    state = {k: pick(old.state[k], new.state[k]) for k in old.state}
    return GaussResponse(
        pick(old.stress, new.stress), pick(old.tangent, new.tangent), state, pick(old.energy, new.energy)
    )


def predict(us: list[torch.Tensor], ds: Sequence[float], d: float, first: torch.Tensor) -> torch.Tensor:
    """Newton guess for top displacement d from the last converged steps (us at ds, at most two): linear
    extrapolation through two, scaling of one (u proportional to d), `first` without any."""
    if len(us) == 2 and ds[1] != ds[0]:
        return us[1] + (us[1] - us[0]) * ((d - ds[1]) / (ds[1] - ds[0]))
    if us and ds[-1] != 0.0:
        return us[-1] * (d / ds[-1])
    return first


@dataclass
class LoadPath:
    """A solved load path of n steps: displacements (list of (B, 1, 2, *nodes)), the history *before* each
    step (list of ``State``, the law's initial state first), the outputs (B, n) and the status. Memory: the
    displacements and the history of every step (J2: 8 floats per Gauss point and step), no tangents."""

    u: list[torch.Tensor]
    states: list[State]
    values: torch.Tensor
    status: NewtonStatus


def solve_load_path(
    law: MaterialLaw,
    bc: Tension,
    displacements: Sequence[float],
    h: Sequence[float],
    options: SolveOptions,
    batch: int,
    dtype: torch.dtype,
    device,
    output: Callable[[GaussResponse], torch.Tensor] | None = None,
) -> LoadPath:
    """Apply the top displacements one after another, each step from the history of the last (none for a
    hyperelastic law) and from the Newton guess of ``predict`` (genopt starts each step from u = 0; the
    converged solution is the same). output(response) -> (B,) is recorded per step (NaN for a sample that
    failed). A sample that fails at a step is skipped afterwards."""
    mask, options = bc.mask(dtype, device), tangent_options(options, bc.el_shape, device)
    nodes = (batch, 1, 2, bc.el_shape[0] + 1, bc.el_shape[1] + 1)
    state = law.initial_state(gauss_gradient(torch.zeros(nodes, dtype=dtype, device=device), h))
    n = len(displacements)
    newton = torch.zeros(batch, n, dtype=torch.int64)
    linear = torch.zeros(batch, n, dtype=torch.int64)
    residual = torch.zeros(batch, n, dtype=torch.float64)
    failed_step = torch.full((batch,), -1, dtype=torch.int64)
    message = [""] * batch
    us, states = [], []
    values = torch.full((batch, n), torch.nan, dtype=dtype, device=device)
    for k, d in enumerate(displacements):
        guess = predict(
            us[-2:], displacements[max(0, k - 2) : k], d, bc.stretch(d, dtype, device).expand(nodes)
        )
        out = newton_solve(
            law, state, mask, bc.prescribed(d, dtype, device), guess, h, options, failed_step >= 0
        )
        newton[:, k], linear[:, k], residual[:, k] = (
            out.newton_iterations,
            out.linear_iterations,
            out.residual,
        )
        for i, text in enumerate(out.failure):
            if text and failed_step[i] < 0:
                failed_step[i], message[i] = k, f"load step {k + 1} (d = {d:g}): {text}"
        states.append(state)
        us.append(out.u)
        if output is not None:
            values[:, k] = torch.where(failed_step.to(device) >= 0, torch.nan, output(out.response))
        state = out.response.state
    status = NewtonStatus(failed_step < 0, newton, linear, residual, failed_step, message)
    return LoadPath(us, states, values, status)
