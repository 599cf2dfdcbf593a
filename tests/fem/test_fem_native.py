"""The fused CPU kernels (matdiff.fem.native) against the PyTorch path they replace: products with every
epilogue, grid transfers, PCG vector steps and whole solves. Run with 3 threads, so planes split unevenly
among threads (odd periodic plane counts included). That threads never write the same nodes holds by the
plane colouring's construction: a race would need neighbouring planes to run at the same instant, too rare
for a test to catch (removing the colouring did not fail these tests)."""

import hashlib

import pytest
import torch
from test_fem_solvers import particles

from matdiff.fem import SolveOptions, bulk_modulus, homogenized_stiffness, native
from matdiff.fem.grid import node_shape
from matdiff.fem.laws import IsotropicOperator
from matdiff.fem.operators import ElementOperator
from matdiff.fem.transfer import LinearTransfer

SHAPES = [(2, (6, 5)), (2, (7, 16)), (2, (33, 18)), (3, (3, 5, 4)), (3, (5, 4, 17)), (3, (8, 8, 8))]


@pytest.fixture
def threads():
    """Three torch threads (the kernels use torch's count) for one test."""
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def torch_path(monkeypatch):
    """A function that runs its argument with the kernels switched off (the PyTorch path, as on CUDA)."""

    def run(fn):
        with monkeypatch.context() as m:
            m.setattr(native, "usable", lambda *tensors: False)
            return fn()

    return run


def test_kernels_build_here():
    """The test machine has a compiler, so the fast path is what the other tests exercise."""
    assert native.library() is not None


def random_operators(dim, el, periodic, dtype, batch=3, seed=0, h=None):
    """Isotropic operator of random positive Lame fields (voxel sides h), the element operator of its
    matrices."""
    g = torch.Generator().manual_seed(seed)
    lam = torch.rand(batch, *el, generator=g, dtype=dtype) * 10 + 0.1
    mu = torch.rand(batch, *el, generator=g, dtype=dtype) * 10 + 0.1
    iso = IsotropicOperator(lam, mu, periodic, h)
    return iso, ElementOperator(iso.element_matrices(), el, periodic)


def relative(a, b):
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("periodic", [False, True])
@pytest.mark.parametrize("dim,el", SHAPES)
def test_products_match_pytorch(dim, el, periodic, dtype, threads, torch_path):
    """K u, masked K u, residual and Jacobi step of both operators equal the PyTorch path."""
    iso, elem = random_operators(dim, el, periodic, dtype)
    g = torch.Generator().manual_seed(1)
    nodes = node_shape(el, periodic)
    u, r = (torch.randn(3, 2, dim, *nodes, generator=g, dtype=dtype) for _ in range(2))
    w = torch.rand(3, 1, dim, *nodes, generator=g, dtype=dtype)
    mask = (torch.rand(1, 1, 1, *nodes, generator=g) > 0.2).to(dtype)
    tol = 1e-14 if dtype == torch.float64 else 1e-6
    for op in (iso, elem):
        calls = {
            "product": lambda op=op: op.apply(u),
            "masked": lambda op=op: op.apply(u, mask),
            "residual": lambda op=op: op.residual(r, u),
            "masked residual": lambda op=op: op.residual(r, u, mask),
            "jacobi": lambda op=op: op.jacobi(r, u, w),
        }
        for name, call in calls.items():
            err = relative(call(), torch_path(call))
            assert err < tol, f"{type(op).__name__} {name}: {err:.2e}"


@pytest.mark.parametrize("periodic", [False, True])
@pytest.mark.parametrize(
    "dim,el,h", [(2, (6, 5), (0.3, 0.2)), (3, (3, 5, 4), (0.1, 0.2, 0.15)), (3, (4, 4, 4), 0.5)]
)
def test_isotropic_product_with_voxel_sizes(dim, el, h, periodic, threads, torch_path):
    """Anisotropic and scaled voxels: the 3D kernel's sum factorization takes the voxel sides, the 2D kernel
    the reference matrices of those sides; both equal the PyTorch path and the element-matrix operator."""
    iso, elem = random_operators(dim, el, periodic, torch.float64, h=h)
    u = torch.randn(
        3, 2, dim, *node_shape(el, periodic), generator=torch.Generator().manual_seed(5), dtype=torch.float64
    )
    fast = iso.apply(u)
    assert relative(fast, torch_path(lambda: iso.apply(u))) < 1e-14
    assert relative(fast, elem.apply(u)) < 1e-13


@pytest.mark.parametrize("periodic", [False, True])
@pytest.mark.parametrize("dim,el", [(2, (64, 64)), (2, (63, 64)), (3, (16, 16, 16)), (3, (15, 8, 16))])
def test_one_field_split_across_threads(dim, el, periodic, threads, torch_path):
    """One field, whose planes the threads split among them (odd plane counts, periodic wrap included)."""
    iso, _ = random_operators(dim, el, periodic, torch.float64, batch=1)
    u = torch.randn(1, 1, dim, *node_shape(el, periodic), dtype=torch.float64)
    err = relative(iso.apply(u), torch_path(lambda: iso.apply(u)))
    assert err < 1e-14, f"{err:.2e}"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("periodic", [False, True])
@pytest.mark.parametrize("dim,nodes_c", [(2, (5, 4)), (2, (9, 17)), (3, (3, 4, 5)), (3, (5, 5, 9))])
def test_transfers_match_pytorch(dim, nodes_c, periodic, dtype, threads, torch_path):
    """Linear prolongation (alone and added to a fine field) and restriction equal the strided-slice PyTorch
    versions."""
    transfer = LinearTransfer(periodic)
    g = torch.Generator().manual_seed(2)
    xc = torch.randn(2, 3, dim, *nodes_c, generator=g, dtype=dtype)
    xf = torch.randn(2, 3, dim, *native.fine_nodes(nodes_c, periodic), generator=g, dtype=dtype)
    tol = 1e-14 if dtype == torch.float64 else 1e-6
    for name, call in (
        ("prolong", lambda: transfer.prolong(xc)),
        ("prolong added to a fine field", lambda: transfer.prolong(xc, add_to=xf)),
        ("restrict", lambda: transfer.restrict(xf)),
    ):
        fast, ref = call(), torch_path(call)
        assert fast.shape == ref.shape, name
        assert relative(fast, ref) < tol, f"{name}: {relative(fast, ref):.2e}"


def test_kernels_leave_autograd_to_pytorch():
    """A product whose inputs require grad takes the PyTorch path, so it stays differentiable."""
    iso, _ = random_operators(2, (4, 4), False, torch.float64, batch=1)
    u = torch.randn(1, 1, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    assert not native.usable(u)
    iso.apply(u).sum().backward()
    assert u.grad is not None


@pytest.mark.parametrize("dim,n", [(2, 32), (3, 8)])
def test_solves_match_pytorch(dim, n, threads, torch_path):
    """Bulk modulus, its gradient and C_hom from multigrid PCG agree with and without the kernels."""
    E, nu = particles((3,) + (n,) * dim, 3, 100.0)

    def solve():
        e = E.clone().requires_grad_()
        k = bulk_modulus(e, nu, options=SolveOptions("mg", rtol=1e-12))
        k.sum().backward()
        return k.detach(), e.grad, homogenized_stiffness(E, nu, options=SolveOptions("mg", rtol=1e-12))

    for name, fast, ref in zip(("K", "dK/dE", "C_hom"), solve(), torch_path(solve), strict=True):
        assert relative(fast, ref) < 1e-9, f"{name}: {relative(fast, ref):.2e}"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_pcg_vector_steps_match_pytorch(dtype, threads):
    """Float64-accumulated dot products and the fused x, r update with ||r||^2."""
    g = torch.Generator().manual_seed(4)
    x, r, p, q = (torch.randn(3, 2, 2, 9, 9, generator=g, dtype=dtype) for _ in range(4))
    alpha = torch.rand(3, 2, generator=g, dtype=torch.float64)
    dims = (2, 3, 4)
    assert relative(native.dot(p, q), torch.sum(p.double() * q.double(), dim=dims)) < 1e-12
    a = alpha.to(dtype).view(3, 2, 1, 1, 1)
    x_ref, r_ref = x + a * p, r - a * q
    rr = native.cg_update(x, r, p, q, alpha)
    tol = 1e-14 if dtype == torch.float64 else 1e-6
    assert relative(x, x_ref) < tol and relative(r, r_ref) < tol
    assert relative(rr, torch.sum(r_ref.double() ** 2, dim=dims)) < tol


@pytest.fixture
def fake_compiler(tmp_path, monkeypatch):
    """A private cache folder, a 'compiler' that writes fixed bytes to its -o path (counting its calls), and
    a loader that records what it is asked to load (a second copy of the kernels in one process crashed it
    at exit)."""
    script = tmp_path / "fake-cxx"
    script.write_text(f'#!/bin/bash\necho built >> {tmp_path}/calls\necho kernels > "${{@: -1}}"\n')
    script.chmod(0o700)
    monkeypatch.setenv("MATDIFF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(native.ctypes, "CDLL", lambda path: f"loaded {path}")
    return str(script), tmp_path / "calls"


def test_a_built_library_is_recorded_and_a_tampered_one_is_rebuilt_never_loaded(fake_compiler):
    compiler, calls = fake_compiler
    path = native.build(compiler)
    assert native.record_path(path).read_text() == hashlib.sha256(path.read_bytes()).hexdigest()
    assert native.load(path) == f"loaded {path}"
    assert native.build(compiler) == path and calls.read_text().count("\n") == 1  # trusted: not rebuilt
    path.write_bytes(path.read_bytes() + b"planted")
    with pytest.raises(native.UntrustedLibrary, match="does not match"):
        native.load(path)
    native.build(compiler)  # rebuilt, not trusted
    assert calls.read_text().count("\n") == 2 and native.load(path) == f"loaded {path}"


def test_no_library_is_loaded_from_a_folder_others_can_write(fake_compiler):
    compiler, _ = fake_compiler
    path = native.build(compiler)
    path.parent.chmod(0o777)
    with pytest.raises(native.UntrustedLibrary, match="writable by other users"):
        native.load(path)
