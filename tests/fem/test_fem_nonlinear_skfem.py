"""Independent scikit-fem oracle for seed B's two nonlinear examples (SPEC 7), and tests comparing it with
``matdiff.fem.strain_energy_curve`` and ``matdiff.fem.stress_displacement_curve``.

The oracle shares no code with matdiff: the mesh, basis and quadrature are scikit-fem's (MeshQuad.init_tensor,
ElementVector(ElementQuad1()), 2 x 2 Gauss), the constitutive laws, their stresses and consistent tangents
are derived and written here with skfem.helpers, and the nonlinear solves are a plain Newton with a
backtracking line search (scipy spsolve on the system condensed by skfem.condense), converged to 1e-10
relative on the free residual. The only matdiff imports are the two functions under test, inside the
comparison tests, so the oracle's own checks run even before those functions exist.

Conventions (SPEC 7): the unit square, n x n bilinear quads, per-element fields (n, n) in image orientation,
row 0 the top (loaded, y = 1) row of elements, column 0 the left edge (x = 0).

1. Plane-strain compressible Neo-Hookean, psi = mu/2 (J^(-2/3) I1 - 3) + kappa/2 (J - 1)^2 with F33 = 1;
   bottom clamped, top u_y = d (u_x free), sides free; output the strain energy at each d (independent steps).
2. Small-strain perfect J2 plasticity on the 2 x 2 in-plane tensors with the 2-D deviator and radial return;
   bottom u_y = 0, bottom-left corner u_x = 0, top u_y = d_i; output the area-averaged sigma_yy after each
   increment, history (sigma, eps) per quadrature point.
"""

import time

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch

skfem = pytest.importorskip("skfem")
from skfem import (  # noqa: E402
    Basis,
    BilinearForm,
    ElementQuad1,
    ElementVector,
    Functional,
    LinearForm,
    MeshQuad,
    asm,
    condense,
)
from skfem.helpers import ddot, det, eye, grad, inv, sym_grad, trace, transpose  # noqa: E402

NU = 0.3
HYPER_D = [0.05 * (i + 1) for i in range(10)]
PLASTIC_D = [0.0005 * (i + 1) for i in range(20)]


def matdiff_function(name: str):
    """The matdiff function under test, or skip while it does not exist yet."""
    fem = pytest.importorskip("matdiff.fem")
    fn = getattr(fem, name, None)
    if fn is None:
        pytest.skip(f"matdiff.fem.{name} not available yet")
    return fn


# ----------------------------------------------------------------------------------------------------------
# mesh, fields, Newton
# ----------------------------------------------------------------------------------------------------------


def unit_square(n: int):
    """n x n bilinear quads on the unit square, vector basis with 2 x 2 Gauss points."""
    t = np.linspace(0.0, 1.0, n + 1)
    mesh = MeshQuad.init_tensor(t, t)
    basis = Basis(mesh, ElementVector(ElementQuad1()), intorder=3)
    assert basis.X.shape[-1] == 4 and np.allclose(basis.W, 0.25)  # full 2 x 2 Gauss
    return mesh, basis


def qp_field(mesh, basis, field: np.ndarray) -> np.ndarray:
    """Image-oriented per-element field (n, n) -> (n_elements, n_qp): row 0 = top row (y near 1)."""
    n = field.shape[0]
    assert field.shape == (n, n)
    cx, cy = mesh.p[:, mesh.t].mean(axis=1)
    col = np.floor(cx * n).astype(int)
    row = n - 1 - np.floor(cy * n).astype(int)
    return np.repeat(np.asarray(field, dtype=float)[row, col][:, None], basis.X.shape[-1], axis=1)


def node_dofs(basis, mask: np.ndarray, comp: int) -> np.ndarray:
    return basis.nodal_dofs[comp][mask]


def newton(residual, tangent, x: np.ndarray, D: np.ndarray, tol: float = 1e-10, maxit: int = 60):
    """Newton on the free dofs (x already holds the Dirichlet values on D) with backtracking on the free
    residual norm; converged when |R_free| <= tol * |R| (R including the reactions on D)."""
    free = np.setdiff1d(np.arange(len(x)), D)
    r = residual(x)
    for _ in range(maxit):
        rf = np.linalg.norm(r[free])
        if rf <= tol * np.linalg.norm(r):
            return x, r
        A, b, _, I = condense(tangent(x), -r, D=D)
        dx = np.zeros_like(x)
        dx[I] = spla.spsolve(A.tocsc(), b)
        alpha = 1.0
        while True:
            with np.errstate(all="ignore"):
                r_new = residual(x + alpha * dx)
            rn = np.linalg.norm(r_new[free])
            if np.isfinite(rn) and rn < (1.0 - 1e-4 * alpha) * rf:
                break
            alpha *= 0.5
            if alpha < 1e-12:
                raise RuntimeError(
                    f"line search failed at |R_free| = {rf:.3e} (|R| = {np.linalg.norm(r):.3e})"
                )
        x, r = x + alpha * dx, r_new
    raise RuntimeError(f"Newton did not converge: |R_free| = {np.linalg.norm(r[free]):.3e}")


def matmul(A, B):
    return np.einsum("ik...,kj...->ij...", A, B)


# ----------------------------------------------------------------------------------------------------------
# 1. hyperelastic (plane-strain compressible Neo-Hookean)
# ----------------------------------------------------------------------------------------------------------


def neo_hookean(F, mu, kappa):
    """psi and P = dpsi/dF for the 2 x 2 in-plane F (F33 = 1): J = det F, I1 = F:F + 1,
    P = mu J^(-2/3) (F - I1/3 F^-T) + kappa (J - 1) J F^-T."""
    J = det(F)
    FiT = transpose(inv(F))
    I1 = ddot(F, F) + 1.0
    a = mu * J ** (-2.0 / 3.0)
    psi = 0.5 * mu * (J ** (-2.0 / 3.0) * I1 - 3.0) + 0.5 * kappa * (J - 1.0) ** 2
    P = a * (F - I1 / 3.0 * FiT) + kappa * (J - 1.0) * J * FiT
    return psi, P


def neo_hookean_dP(F, dF, mu, kappa):
    """dP[dF]: with dJ = J F^-T:dF, d(F^-T) = -F^-T dF^T F^-T, dI1 = 2 F:dF, a = mu J^(-2/3) and
    da = -2/3 a F^-T:dF,
    dP = da (F - I1/3 F^-T) + a (dF - dI1/3 F^-T - I1/3 dF^-T)
         + kappa [(2J - 1) J (F^-T:dF) F^-T + (J^2 - J) dF^-T]."""
    J = det(F)
    FiT = transpose(inv(F))
    I1 = ddot(F, F) + 1.0
    tr = ddot(FiT, dF)
    dFiT = -matmul(matmul(FiT, transpose(dF)), FiT)
    a = mu * J ** (-2.0 / 3.0)
    da = -2.0 / 3.0 * a * tr
    dI1 = 2.0 * ddot(F, dF)
    return (
        da * (F - I1 / 3.0 * FiT)
        + a * (dF - dI1 / 3.0 * FiT - I1 / 3.0 * dFiT)
        + kappa * ((2.0 * J - 1.0) * J * tr * FiT + (J * J - J) * dFiT)
    )


def deformation_gradient(w):
    G = grad(w.uk)
    return G + eye(np.ones_like(G[0, 0]), 2)


@LinearForm
def nh_residual(v, w):
    return ddot(neo_hookean(deformation_gradient(w), w.mu, w.kappa)[1], grad(v))


@BilinearForm
def nh_tangent(u, v, w):
    return ddot(neo_hookean_dP(deformation_gradient(w), grad(u), w.mu, w.kappa), grad(v))


@Functional
def nh_energy(w):
    return neo_hookean(deformation_gradient(w), w.mu, w.kappa)[0]


class HyperOracle:
    """Plane-strain Neo-Hookean block; uniaxial_strain=True also fixes u_x on the sides (x = 0, 1), for which
    u = (0, d y) is the exact solution of a homogeneous block."""

    def __init__(self, E: np.ndarray, nu: np.ndarray, uniaxial_strain: bool = False):
        self.mesh, self.basis = unit_square(E.shape[0])
        e, n = qp_field(self.mesh, self.basis, E), qp_field(self.mesh, self.basis, nu)
        self.fields = {"mu": e / (2.0 * (1.0 + n)), "kappa": e / (3.0 * (1.0 - 2.0 * n))}
        x, y = self.mesh.p
        bottom, top = np.isclose(y, 0.0), np.isclose(y, 1.0)
        D = [
            node_dofs(self.basis, bottom, 0),
            node_dofs(self.basis, bottom, 1),
            node_dofs(self.basis, top, 1),
        ]
        if uniaxial_strain:
            D.append(node_dofs(self.basis, np.isclose(x, 0.0) | np.isclose(x, 1.0), 0))
        self.D = np.unique(np.concatenate(D))
        self.top_y = node_dofs(self.basis, top, 1)
        self.y = y

    def residual(self, x):
        return asm(nh_residual, self.basis, uk=self.basis.interpolate(x), **self.fields)

    def tangent(self, x):
        return asm(nh_tangent, self.basis, uk=self.basis.interpolate(x), **self.fields)

    def energy(self, x) -> float:
        return float(asm(nh_energy, self.basis, uk=self.basis.interpolate(x), **self.fields))

    def solve(self, d: float, x0: np.ndarray | None = None):
        """Equilibrium at top displacement d from the initial guess x0 (its Dirichlet values overwritten),
        by default u = (0, d y)."""
        if x0 is None:
            x0 = np.zeros(self.basis.N)
            x0[self.basis.nodal_dofs[1]] = d * self.y
        x0 = x0.copy()
        x0[self.D] = 0.0
        x0[self.top_y] = d
        return newton(self.residual, self.tangent, x0, self.D)

    def curve(self, displacements) -> np.ndarray:
        out, x, d_prev = [], None, None
        for d in displacements:
            guess = None if x is None else x * (d / d_prev)
            x, _ = self.solve(d, guess)
            out.append(self.energy(x))
            d_prev = d
        return np.array(out)


# ----------------------------------------------------------------------------------------------------------
# 2. small-strain perfect J2 plasticity (2-D deviator, radial return)
# ----------------------------------------------------------------------------------------------------------


def j2_update(eps, sig_prev, eps_prev, lam, mu, sigma0):
    """Radial return: sigma_tr = sigma_prev + C:(eps - eps_prev), s = sigma_tr - tr/2 I, s_eq = sqrt(3/2 s:s),
    sigma = sigma_tr - max(s_eq - sigma0, 0) s / s_eq = tr/2 I + c s with c = min(1, sigma0 / s_eq).
    Returns sigma, s, s_eq and c."""
    de = eps - eps_prev
    ident = eye(np.ones_like(lam), 2)
    sig_tr = sig_prev + lam * trace(de) * ident + 2.0 * mu * de
    p = 0.5 * trace(sig_tr)
    s = sig_tr - p * ident
    s_eq = np.sqrt(1.5 * ddot(s, s))
    yielding = s_eq > sigma0
    c = np.where(yielding, sigma0 / np.where(yielding, s_eq, 1.0), 1.0)
    return p * ident + c * s, s, s_eq, c


def j2_dsigma(deps, s, s_eq, c, lam, mu):
    """Consistent tangent: dsigma = (lam + mu) tr(de) I + 2 mu c [dev(de) - beta (s:de) s] with
    beta = 3/(2 s_eq^2) when yielding (c < 1), else 0 (then it is lam tr(de) I + 2 mu de)."""
    ident = eye(np.ones_like(lam), 2)
    tr = trace(deps)
    beta = np.where(c < 1.0, 1.5 / np.where(c < 1.0, s_eq, 1.0) ** 2, 0.0)
    return (lam + mu) * tr * ident + 2.0 * mu * c * (deps - 0.5 * tr * ident - beta * ddot(s, deps) * s)


def j2_state(w):
    return j2_update(sym_grad(w.uk), w.sig_prev, w.eps_prev, w.lam, w.mu, w.sigma0)


@LinearForm
def j2_residual(v, w):
    return ddot(j2_state(w)[0], sym_grad(v))


@BilinearForm
def j2_tangent(u, v, w):
    _, s, s_eq, c = j2_state(w)
    return ddot(j2_dsigma(sym_grad(u), s, s_eq, c, w.lam, w.mu), sym_grad(v))


@Functional
def j2_sigma_yy(w):
    return j2_state(w)[0][1, 1]


class PlasticOracle:
    def __init__(self, E: np.ndarray, nu: np.ndarray, sigma0: np.ndarray):
        self.mesh, self.basis = unit_square(E.shape[0])
        e, n = qp_field(self.mesh, self.basis, E), qp_field(self.mesh, self.basis, nu)
        self.fields = {
            "lam": e * n / ((1.0 + n) * (1.0 - 2.0 * n)),
            "mu": e / (2.0 * (1.0 + n)),
            "sigma0": qp_field(self.mesh, self.basis, sigma0),
        }
        x, y = self.mesh.p
        bottom, top = np.isclose(y, 0.0), np.isclose(y, 1.0)
        corner = bottom & np.isclose(x, 0.0)
        self.top_y = node_dofs(self.basis, top, 1)
        self.D = np.unique(
            np.concatenate([node_dofs(self.basis, bottom, 1), self.top_y, node_dofs(self.basis, corner, 0)])
        )
        self.y = y
        shape = (2, 2) + self.fields["mu"].shape
        self.sig_prev, self.eps_prev = np.zeros(shape), np.zeros(shape)

    def kw(self, x):
        return dict(
            uk=self.basis.interpolate(x), sig_prev=self.sig_prev, eps_prev=self.eps_prev, **self.fields
        )

    def residual(self, x):
        return asm(j2_residual, self.basis, **self.kw(x))

    def tangent(self, x):
        return asm(j2_tangent, self.basis, **self.kw(x))

    def commit(self, x):
        """Store the converged (sigma, eps) as the history; returns the fraction of yielding points."""
        eps = sym_grad(self.basis.interpolate(x))
        sigma, _, _, c = j2_update(
            eps, self.sig_prev, self.eps_prev, self.fields["lam"], self.fields["mu"], self.fields["sigma0"]
        )
        self.sig_prev, self.eps_prev = np.array(sigma), np.array(eps)
        return float(np.mean(c < 1.0))

    def curve(self, displacements):
        """Area-averaged sigma_yy after each increment, and the yielding fraction after each increment."""
        x = np.zeros(self.basis.N)
        out, frac, d_prev = [], [], 0.0
        for d in displacements:
            x = x.copy()
            x[self.basis.nodal_dofs[1]] += (d - d_prev) * self.y  # BC-consistent predictor
            x, _ = newton(self.residual, self.tangent, x, self.D)
            out.append(float(asm(j2_sigma_yy, self.basis, **self.kw(x))))  # area = 1
            frac.append(self.commit(x))
            d_prev = d
        return np.array(out), np.array(frac)


# ----------------------------------------------------------------------------------------------------------
# fields
# ----------------------------------------------------------------------------------------------------------


def smooth_field(n: int, seed: int) -> np.ndarray:
    """Values in [0, 1]: a random low-frequency Fourier field, rescaled."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.arange(n) / n, np.arange(n) / n, indexing="ij")
    f = np.zeros((n, n))
    for kx in range(3):
        for ky in range(3):
            f += rng.normal() * np.cos(np.pi * (kx * xx + ky * yy) + rng.uniform(0, 2 * np.pi))
    return (f - f.min()) / (f.max() - f.min())


def binary_field(n: int, seed: int, p: float = 0.5) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, n)) < p).astype(float)


def soft_top(n: int) -> np.ndarray:
    """0 (soft/weak) on the top half of the image plus a soft left strip below, 1 elsewhere: not symmetric
    under a row flip or a transpose."""
    x = np.ones((n, n))
    x[: n // 2] = 0.0
    x[:, : n // 4] = 0.0
    return x


# ----------------------------------------------------------------------------------------------------------
# oracle sanity (no matdiff)
# ----------------------------------------------------------------------------------------------------------


def test_oracle_mesh_orientation():
    """Element (row i, col j) of the image sits at x in [j h, (j+1) h], y in [1 - (i+1) h, 1 - i h]."""
    n = 4
    mesh, basis = unit_square(n)
    rows, cols = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    r, c = qp_field(mesh, basis, rows)[:, 0], qp_field(mesh, basis, cols)[:, 0]
    h = 1.0 / n
    xs, ys = mesh.p[:, mesh.t]
    assert np.allclose(xs.min(0), c * h) and np.allclose(xs.max(0), (c + 1) * h)
    assert np.allclose(ys.min(0), 1 - (r + 1) * h) and np.allclose(ys.max(0), 1 - r * h)


def test_oracle_neo_hookean_tangent_matches_finite_difference():
    """The assembled tangent against central differences of the assembled residual at a random deformed state,
    on a 3 x 3 mesh with a heterogeneous field."""
    rng = np.random.default_rng(0)
    E = 1.0 + 99.0 * rng.random((3, 3))
    nu = 0.25 + 0.1 * rng.random((3, 3))
    o = HyperOracle(E, nu)
    x = 0.05 * rng.standard_normal(o.basis.N)
    K = o.tangent(x).toarray()
    assert np.allclose(K, K.T, rtol=0, atol=1e-10 * np.abs(K).max())
    for _ in range(3):
        v = rng.standard_normal(o.basis.N)
        h = 1e-6
        fd = (o.residual(x + h * v) - o.residual(x - h * v)) / (2 * h)
        assert np.abs(K @ v - fd).max() < 1e-7 * np.abs(fd).max()


def test_oracle_neo_hookean_stress_is_energy_derivative():
    """P = dpsi/dF: the assembled residual against central differences of the assembled energy."""
    rng = np.random.default_rng(1)
    o = HyperOracle(1.0 + 99.0 * rng.random((3, 3)), np.full((3, 3), NU))
    x = 0.05 * rng.standard_normal(o.basis.N)
    r = o.residual(x)
    for _ in range(3):
        v = rng.standard_normal(o.basis.N)
        h = 1e-5
        fd = (o.energy(x + h * v) - o.energy(x - h * v)) / (2 * h)
        assert abs(r @ v - fd) < 1e-8 * np.abs(r).sum() * np.abs(v).max()


@pytest.mark.parametrize("E", [1.0, 100.0])
def test_oracle_neo_hookean_uniaxial_strain_closed_form(E):
    """Homogeneous block with u_x also fixed on the sides: F = diag(1, 1 + d), J = 1 + d,
    energy = mu/2 (J^(-2/3) (2 + J^2) - 3) + kappa/2 d^2 (area 1); interior u_x stays 0."""
    n = 4
    o = HyperOracle(np.full((n, n), E), np.full((n, n), NU), uniaxial_strain=True)
    mu, kappa = E / (2 * (1 + NU)), E / (3 * (1 - 2 * NU))
    d = np.array(HYPER_D)
    J = 1.0 + d
    exact = 0.5 * mu * (J ** (-2.0 / 3.0) * (2.0 + J**2) - 3.0) + 0.5 * kappa * d**2
    got = o.curve(d)
    assert np.allclose(got, exact, rtol=1e-10, atol=0)
    x, _ = o.solve(0.5)  # from the default guess (0, d y) that is exact: start from a perturbed one instead
    x2, _ = o.solve(0.5, x + 0.01 * np.random.default_rng(0).standard_normal(o.basis.N))
    assert np.allclose(x2[o.basis.nodal_dofs[0]], 0.0, atol=1e-10)
    assert np.allclose(x2[o.basis.nodal_dofs[1]], 0.5 * o.y, atol=1e-10)


def test_oracle_neo_hookean_energy_matches_reaction_work():
    """Under the real BCs (clamped bottom, free sides): dW/dd = total top reaction force, by central
    differences in d on a heterogeneous field; also steps are independent of the initial guess."""
    n = 4
    E = 1.0 + 99.0 * smooth_field(n, 3)
    o = HyperOracle(E, np.full((n, n), NU))
    d, h = 0.3, 1e-4
    x, r = o.solve(d)
    force = r[o.top_y].sum()
    dW = (o.energy(o.solve(d + h, x)[0]) - o.energy(o.solve(d - h, x)[0])) / (2 * h)
    assert abs(force - dW) < 1e-6 * abs(force)
    x_cold, _ = o.solve(d, np.zeros(o.basis.N))
    assert abs(o.energy(x_cold) - o.energy(x)) < 1e-11 * o.energy(x)


def test_oracle_j2_tangent_matches_finite_difference():
    """Consistent tangent against central differences of the residual, at a state past yield for part of the
    points (history from one committed increment), on a 3 x 3 mesh."""
    rng = np.random.default_rng(2)
    n = 3
    E = 1e3 + 99e3 * rng.random((n, n))
    s0 = 30.0 + 270.0 * rng.random((n, n))
    o = PlasticOracle(E, np.full((n, n), NU), s0)
    o.curve([0.002])
    x = 1e-3 * rng.standard_normal(o.basis.N)
    x[o.basis.nodal_dofs[1]] += 0.004 * o.y
    _, _, _, c = j2_update(
        sym_grad(o.basis.interpolate(x)),
        o.sig_prev,
        o.eps_prev,
        o.fields["lam"],
        o.fields["mu"],
        o.fields["sigma0"],
    )
    assert 0.0 < np.mean(c < 1.0) < 1.0, "want a mix of elastic and yielding points"
    K = o.tangent(x).toarray()
    for _ in range(3):
        v = rng.standard_normal(o.basis.N)
        h = 1e-9
        fd = (o.residual(x + h * v) - o.residual(x - h * v)) / (2 * h)
        assert np.abs(K @ v - fd).max() < 1e-6 * np.abs(fd).max()


@pytest.mark.parametrize("E,sigma0", [(1e3, 300.0), (1e4, 30.0), (1e5, 300.0), (1e5, 30.0)])
def test_oracle_j2_homogeneous_uniaxial_stress(E, sigma0):
    """Homogeneous block, sides free, roller bottom: sigma_yy = E d / (1 - nu^2) below yield, then flat at
    2 sigma0 / sqrt(3) (SPEC 7); (1e3, 300) stays elastic, (1e5, 30) yields in the first increment."""
    n = 4
    o = PlasticOracle(np.full((n, n), E), np.full((n, n), NU), np.full((n, n), sigma0))
    got, frac = o.curve(PLASTIC_D)
    d = np.array(PLASTIC_D)
    exact = np.minimum(E * d / (1 - NU**2), 2 * sigma0 / np.sqrt(3))
    assert np.allclose(got, exact, rtol=1e-9, atol=0)
    assert np.all(frac[exact < 2 * sigma0 / np.sqrt(3) * (1 - 1e-9)] == 0.0)
    assert np.all(frac[E * d / (1 - NU**2) > 2 * sigma0 / np.sqrt(3) * (1 + 1e-9)] == 1.0)


# ----------------------------------------------------------------------------------------------------------
# matdiff against the oracle
# ----------------------------------------------------------------------------------------------------------


def hyper_case(name: str, n: int):
    if name == "smooth":
        x = smooth_field(n, 10)
    elif name == "binary":
        x = binary_field(n, 11)
    else:
        x = soft_top(n)
    return 1.0 + 99.0 * x, np.full((n, n), NU)


def matdiff_energy(E_list, nu_list, displacements) -> np.ndarray:
    fn = matdiff_function("strain_energy_curve")
    E = torch.tensor(np.stack(E_list), dtype=torch.float64)
    nu = torch.tensor(np.stack(nu_list), dtype=torch.float64)
    t0 = time.perf_counter()
    out = fn(E, nu, list(displacements))
    print(f"matdiff strain_energy_curve {tuple(E.shape)}: {time.perf_counter() - t0:.2f} s")
    assert tuple(out.shape) == (len(E_list), len(displacements))
    return out.detach().cpu().numpy()


def matdiff_stress(E_list, nu_list, s0_list, displacements) -> np.ndarray:
    fn = matdiff_function("stress_displacement_curve")
    E, nu, s0 = (torch.tensor(np.stack(a), dtype=torch.float64) for a in (E_list, nu_list, s0_list))
    t0 = time.perf_counter()
    out = fn(E, nu, s0, list(displacements))
    print(f"matdiff stress_displacement_curve {tuple(E.shape)}: {time.perf_counter() - t0:.2f} s")
    assert tuple(out.shape) == (len(E_list), len(displacements))
    return out.detach().cpu().numpy()


@pytest.mark.parametrize("name", ["smooth", "binary", "soft_top"])
def test_strain_energy_curve_matches_oracle(name):
    """d = 0.05 ... 0.5 (10 independent steps) on an 8 x 8 two-phase field (E = 1 + 99 x, nu = 0.3)."""
    E, nu = hyper_case(name, 8)
    ref = HyperOracle(E, nu).curve(HYPER_D)
    got = matdiff_energy([E], [nu], HYPER_D)[0]
    err = np.abs(got - ref) / np.abs(ref)
    print(f"hyper {name}: oracle {ref}\n matdiff {got}\n max rel err {err.max():.2e}")
    assert err.max() < 1e-6


def test_strain_energy_curve_batch_orientation_and_nu():
    """A batch of three 6 x 6 fields: soft top / stiff bottom, its row flip (clamped bottom vs free top makes
    them differ) and its transpose, one with a varying nu; each row of the batch against its own oracle."""
    n = 6
    E = 1.0 + 99.0 * soft_top(n)
    nu_var = 0.25 + 0.1 * smooth_field(n, 5)
    cases = [(E, np.full((n, n), NU)), (E[::-1].copy(), np.full((n, n), NU)), (E.T.copy(), nu_var)]
    d = HYPER_D[::3]
    refs = np.stack([HyperOracle(e, v).curve(d) for e, v in cases])
    assert (np.abs(refs[0] - refs[1]) / refs[0]).min() > 1e-2, "flip must matter"
    assert (np.abs(refs[0] - refs[2]) / refs[0]).min() > 1e-2, "transpose must matter"
    got = matdiff_energy([c[0] for c in cases], [c[1] for c in cases], d)
    err = np.abs(got - refs) / np.abs(refs)
    print(f"hyper batch: oracle {refs}\n matdiff {got}\n max rel err per row {err.max(axis=1)}")
    assert err.max() < 1e-6


def plastic_case(name: str, n: int):
    if name == "binary":
        xe, xs = binary_field(n, 20), binary_field(n, 21)
    elif name == "smooth":
        xe, xs = smooth_field(n, 22), smooth_field(n, 23)
    else:  # weak top half / left strip (also half as stiff), stiff and strong elsewhere
        xs = soft_top(n)
        xe = 0.5 + 0.5 * xs
    return 1e3 + 99e3 * xe, np.full((n, n), NU), 30.0 + 270.0 * xs


@pytest.mark.parametrize("name", ["binary", "smooth", "soft_top"])
def test_stress_displacement_curve_matches_oracle(name):
    """20 increments d = 0.0005 i on an 8 x 8 field (E = 1e3 + 99e3 x_E, sigma0 = 30 + 270 x_s), partially
    yielding: some but not all quadrature points yield by the end."""
    E, nu, s0 = plastic_case(name, 8)
    ref, frac = PlasticOracle(E, nu, s0).curve(PLASTIC_D)
    assert 0.0 < frac[-1] < 1.0, f"want partial yielding, got fraction {frac[-1]}"
    got = matdiff_stress([E], [nu], [s0], PLASTIC_D)[0]
    err = np.abs(got - ref) / np.abs(ref).max()
    print(
        f"plastic {name}: yield fraction {frac}\n oracle {ref}\n matdiff {got}\n max rel err {err.max():.2e}"
    )
    assert err.max() < 1e-6


def test_stress_displacement_curve_batch_orientation():
    """A batch of 6 x 6 fields: weak/soft top, its transpose (differs: loading is vertical) and its row flip
    (same curve: the roller BCs are symmetric top/bottom, the corner pin only removes the x translation),
    each against its own oracle."""
    n = 6
    E, nu, s0 = plastic_case("soft_top", n)
    cases = [(E, s0), (E.T.copy(), s0.T.copy()), (E[::-1].copy(), s0[::-1].copy())]
    refs = np.stack([PlasticOracle(e, nu, s).curve(PLASTIC_D)[0] for e, s in cases])
    scale = np.abs(refs).max(axis=1, keepdims=True)
    assert np.abs(refs[0] - refs[1]).max() > 1e-2 * scale[0, 0], "transpose must matter"
    assert np.abs(refs[0] - refs[2]).max() < 1e-9 * scale[0, 0], "row flip is a symmetry here"
    got = matdiff_stress([c[0] for c in cases], [nu] * 3, [c[1] for c in cases], PLASTIC_D)
    err = np.abs(got - refs) / scale
    print(f"plastic batch: oracle {refs}\n matdiff {got}\n max rel err per row {err.max(axis=1)}")
    assert err.max() < 1e-6
