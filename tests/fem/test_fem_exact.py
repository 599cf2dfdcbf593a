"""Closed-form checks: homogeneous material, laminates under periodic BCs, Voigt-Reuss bounds, symmetry."""

import itertools

import pytest
import torch

from matdiff.fem import SolveOptions, bulk_modulus, homogenized_stiffness


def iso_stiffness(E: float, nu: float, dim: int, plane: str = "stress") -> torch.Tensor:
    """Voigt stiffness (engineering shear) of an isotropic material, (3, 3) plane stress/strain or (6, 6)."""
    lam, mu = E * nu / ((1 + nu) * (1 - 2 * nu)), E / (2 * (1 + nu))
    if dim == 2:
        if plane == "stress":
            lam = E * nu / (1 - nu**2)
        return torch.tensor([[lam + 2 * mu, lam, 0], [lam, lam + 2 * mu, 0], [0, 0, mu]], dtype=torch.float64)
    c = torch.zeros(6, 6, dtype=torch.float64)
    c[:3, :3] = lam
    c[range(3), range(3)] = lam + 2 * mu
    c[range(3, 6), range(3, 6)] = mu
    return c


def two_phase(shape, seed, e=(100.0, 1.0), nus=(0.25, 0.35), frac=0.35, dtype=torch.float64):
    """Random pixel two-phase E, nu (B, *spatial) and the phase indicator."""
    g = torch.Generator().manual_seed(seed)
    m = torch.rand(shape, generator=g) < frac
    E = torch.where(m, torch.tensor(e[0], dtype=dtype), torch.tensor(e[1], dtype=dtype))
    nu = torch.where(m, torch.tensor(nus[0], dtype=dtype), torch.tensor(nus[1], dtype=dtype))
    return E, nu, m


@pytest.mark.parametrize("dim,n", [(2, 8), (3, 4)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("solver", ["mg", "direct"])
def test_homogeneous_exact(dim, n, dtype, solver):
    E0, nu0 = 100.0, 0.3
    E = torch.full((2,) + (n,) * dim, E0, dtype=dtype)
    nu = torch.full_like(E, nu0)
    tol = 1e-10 if dtype == torch.float64 else 2e-5
    k = bulk_modulus(E, nu, options=SolveOptions(solver))
    err_k = float(((k - E0 / (3 * (1 - 2 * nu0))) / (E0 / (3 * (1 - 2 * nu0)))).abs().max())
    c = homogenized_stiffness(E, nu, options=SolveOptions(solver)).double()
    c_ref = iso_stiffness(E0, nu0, dim)
    err_c = float((c - c_ref).abs().max() / c_ref.abs().max())
    print(f"homogeneous dim={dim} {dtype} {solver}: K rel err {err_k:.2e}, C_hom rel err {err_c:.2e}")
    assert err_k < tol and err_c < tol
    if dim == 2:
        ref = torch.tensor([109.8901, 32.967, 38.4615], dtype=torch.float64)
        assert torch.allclose(torch.stack([c[0, 0, 0], c[0, 0, 1], c[0, 2, 2]]), ref, rtol=1e-5)


def test_homogeneous_plane_strain():
    E = torch.full((1, 8, 8), 50.0, dtype=torch.float64)
    nu = torch.full_like(E, 0.2)
    k = bulk_modulus(E, nu, plane="strain")
    c = homogenized_stiffness(E, nu, plane="strain")
    print("plane strain K", float(k[0]), "expected", 50 / (3 * 0.6))
    assert torch.allclose(k, torch.tensor([50 / (3 * 0.6)], dtype=torch.float64), rtol=1e-10)
    assert torch.allclose(c[0], iso_stiffness(50.0, 0.2, 2, "strain"), rtol=1e-10, atol=1e-9)


def laminate_reference(cs: torch.Tensor, frac: torch.Tensor, dim: int) -> torch.Tensor:
    """Exact C of a laminate, normal along physical x (Voigt index 0); phase C (P, n, n), fractions (P,)."""
    avg = lambda t: (frac.view(-1, *([1] * (t.ndim - 1))) * t).sum(0)  # noqa: E731
    c11 = cs[:, 0, 0]
    n = cs.shape[-1]
    shear_x = [2] if dim == 2 else [4, 5]  # shears involving x
    out = avg(cs - cs[:, :, :1] * cs[:, :1, :] / c11[:, None, None])
    a = avg(cs[:, 0, :] / c11[:, None])  # <C_1j / C_11>
    c11_eff = 1 / avg(1 / c11)
    out = out + c11_eff * a[:, None] * a[None, :]
    for s in shear_x:
        out[s, :] = 0
        out[:, s] = 0
        out[s, s] = 1 / avg(1 / cs[:, s, s])
    assert out.shape == (n, n)
    return out


@pytest.mark.parametrize("solver,tol", [("direct", 1e-10), ("mg", 1e-7)])
@pytest.mark.parametrize("dim,n", [(2, 8), (3, 4)])
def test_laminate_closed_form(dim, n, solver, tol):
    pattern = torch.tensor([1, 1, 0, 1, 0, 0, 0, 1][:n], dtype=torch.bool)
    shape = (1,) + (n,) * dim
    m = pattern.expand(shape)  # varies along the last array axis = physical x
    f64 = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731 (python scalars in where give float32)
    E = torch.where(m, f64(200.0), f64(2.0))
    nu = torch.where(m, f64(0.2), f64(0.4))
    c = homogenized_stiffness(E, nu, options=SolveOptions(solver))[0]
    f1 = pattern.double().mean()
    cs = torch.stack([iso_stiffness(200.0, 0.2, dim), iso_stiffness(2.0, 0.4, dim)])
    ref = laminate_reference(cs, torch.stack([f1, 1 - f1]), dim)
    err = float((c - ref).abs().max() / ref.abs().max())
    print(f"laminate dim={dim} {solver}: max rel err {err:.2e}")
    assert err < tol
    # loading along the layers: Voigt (arithmetic) average of the in-plane shear / along-layer stiffness
    if dim == 3:
        assert torch.allclose(c[3, 3], (torch.stack([f1, 1 - f1]) * cs[:, 3, 3]).sum(), rtol=tol)


@pytest.mark.parametrize("dim,n", [(2, 16), (3, 8)])
def test_voigt_reuss_bounds(dim, n):
    E, nu, m = two_phase((3,) + (n,) * dim, seed=1)
    c = homogenized_stiffness(E, nu)
    worst = float("inf")
    for b in range(3):
        f1 = m[b].double().mean()
        cs = torch.stack([iso_stiffness(100.0, 0.25, dim), iso_stiffness(1.0, 0.35, dim)])
        w = torch.stack([f1, 1 - f1]).view(2, 1, 1)
        voigt = (w * cs).sum(0)
        reuss = torch.linalg.inv((w * torch.linalg.inv(cs)).sum(0))
        lo = torch.linalg.eigvalsh(c[b] - reuss).min()
        hi = torch.linalg.eigvalsh(voigt - c[b]).min()
        worst = min(worst, float(lo), float(hi))
        assert lo > -1e-8 and hi > -1e-8
    print(f"Voigt-Reuss dim={dim}: min eigenvalue margin {worst:.3e} GPa (>= 0)")
    if dim == 3:
        k = bulk_modulus(E, nu)
        kp = torch.tensor([100.0 / (3 * 0.5), 1.0 / (3 * 0.3)], dtype=torch.float64)
        f1 = m.double().flatten(1).mean(1)
        kv, kr = f1 * kp[0] + (1 - f1) * kp[1], 1 / (f1 / kp[0] + (1 - f1) / kp[1])
        print("3D K", k.tolist(), "Voigt", kv.tolist(), "Reuss", kr.tolist())
        assert bool((k <= kv).all() and (k >= kr).all())


def transform_voigt(c: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """C' of a material rotated/reflected by the orthogonal q (d, d), Voigt in and out (engineering shear)."""
    d = q.shape[0]
    pairs = [(0, 0), (1, 1), (0, 1)] if d == 2 else [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]
    t = torch.zeros((d,) * 4, dtype=c.dtype)
    for (i, (a, b)), (j, (p, r)) in itertools.product(enumerate(pairs), repeat=2):
        for x, y, z, w in ((a, b, p, r), (b, a, p, r), (a, b, r, p), (b, a, r, p)):
            t[x, y, z, w] = c[i, j]
    t = torch.einsum("ia,jb,kc,ld,abcd->ijkl", q, q, q, q, t)
    return torch.stack([torch.stack([t[a, b, p, r] for p, r in pairs]) for a, b in pairs])


@pytest.mark.parametrize("dim,n", [(2, 8), (3, 4)])
def test_symmetry_mirror_rotation(dim, n):
    E, nu, _ = two_phase((1,) + (n,) * dim, seed=3)
    c = homogenized_stiffness(E, nu)[0]
    assert torch.allclose(c, c.T, atol=1e-12)
    worst = 0.0
    eye = torch.eye(dim, dtype=torch.float64)
    # mirror along every array axis: physical axis p = dim - 1 - array axis
    for ax in range(dim):
        q = eye.clone()
        q[dim - 1 - ax, dim - 1 - ax] = -1
        cm = homogenized_stiffness(E.flip(1 + ax), nu.flip(1 + ax))[0]
        worst = max(worst, float((cm - transform_voigt(c, q)).abs().max()))
    # transposition of two array axes swaps the two physical axes; rot90 = transposition + mirror
    for a1, a2 in itertools.combinations(range(dim), 2):
        q = eye.clone()[:, torch.arange(dim)]
        p1, p2 = dim - 1 - a1, dim - 1 - a2
        q[[p1, p2]] = q[[p2, p1]]
        ct = homogenized_stiffness(E.transpose(1 + a1, 1 + a2), nu.transpose(1 + a1, 1 + a2))[0]
        worst = max(worst, float((ct - transform_voigt(c, q)).abs().max()))
    rot = homogenized_stiffness(torch.rot90(E, 1, (dim - 1, dim)), torch.rot90(nu, 1, (dim - 1, dim)))[0]
    q90 = eye.clone()
    # rot90 over (y, x): the material at (x, y) moves to (y, -x)
    q90[:2, :2] = torch.tensor([[0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    worst = max(worst, float((rot - transform_voigt(c, q90)).abs().max()))
    k = bulk_modulus(E, nu)
    kk = bulk_modulus(E.flip(1).transpose(1, dim), nu.flip(1).transpose(1, dim))
    print(f"symmetry dim={dim}: worst |C' - Q.C| {worst:.2e} GPa, K diff {float((k - kk).abs()):.2e}")
    assert worst < 1e-7 * float(c.abs().max())
    assert torch.allclose(k, kk, rtol=1e-8)


@pytest.mark.parametrize("solver", ["mg", "direct"])
@pytest.mark.parametrize(
    "shape,voxel_size",
    [((12, 8), None), ((12, 8), (0.3, 0.2)), ((6, 8, 4), None), ((6, 8, 4), (0.1, 0.2, 0.15))],
)
def test_homogeneous_exact_on_non_square_boxes(shape, voxel_size, solver):
    """A homogeneous box of square / cubic or anisotropic voxels gives its own K and C exactly."""
    dim = len(shape)
    E = torch.full((1, *shape), 70.0, dtype=torch.float64)
    nu = torch.full_like(E, 0.3)
    options = SolveOptions(solver)
    k = bulk_modulus(E, nu, voxel_size=voxel_size, options=options)
    c = homogenized_stiffness(E, nu, voxel_size=voxel_size, options=options)[0]
    c_ref = iso_stiffness(70.0, 0.3, dim)
    assert torch.allclose(k, torch.tensor([70.0 / (3 * 0.4)], dtype=torch.float64), rtol=1e-10)
    assert float((c - c_ref).abs().max() / c_ref.abs().max()) < 1e-10


@pytest.mark.parametrize("shape", [(12, 10), (6, 8, 4)])
def test_voxel_scale_does_not_change_averages(shape):
    """K and C_hom are volume averages: the same for any uniform voxel size; a non-square field is solved on
    square voxels, not stretched onto the unit square."""
    E, nu, _ = two_phase((2, *shape), seed=5)
    k, c = bulk_modulus(E, nu), homogenized_stiffness(E, nu)
    assert torch.allclose(bulk_modulus(E, nu, voxel_size=3.0), k, rtol=1e-10)
    assert torch.allclose(homogenized_stiffness(E, nu, voxel_size=3.0), c, rtol=1e-10, atol=1e-10)
    stretched = bulk_modulus(E, nu, voxel_size=tuple(1.0 / m for m in shape))
    assert float(((stretched - k) / k).abs().max()) > 1e-4
