"""Benchmark of matdiff.fem: bulk modulus forward + gradient per sample, 2D 64x64 and 3D 32^3, vs peers.

Usage: python benchmarks/fem.py [--quick] [--threads N] [--device cpu|cuda] [--torchfem-python PATH]
       [--jaxfem-python PATH] [--dims 2,3] [--cases mg:cold,mg:warm] [--batches 16] [--skip-peers]

Prints a markdown table. Peers: scipy spsolve / SuperLU (our sparse assembly), pyamg smoothed aggregation,
torch-fem and JAX-FEM, each run as a subprocess in its own benchmark-only venv when its python exists
(see docs/benchmarks.md for how those venvs are made; JAX-FEM needs a ~12-minute PETSc build).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time

import numpy as np
import torch

from matdiff.fem import SolveOptions, WarmStart, bulk_modulus
from matdiff.fem.elements import divergence_vector, element_sizes
from matdiff.fem.grid import affine_field, element_dofs, free_mask
from matdiff.fem.laws import lame, reference_matrices
from matdiff.fem.solvers import sparse_stiffness

TORCHFEM_SCRIPT = r"""
import json, sys, time
import numpy as np, torch
torch.set_default_dtype(torch.float64)
torch.set_num_threads(int(sys.argv[3]))
from torchfem import Planar, Solid
from torchfem.materials import IsotropicElasticity3D, IsotropicElasticityPlaneStress
from torchfem.mesh import cube_hexa, rect_quad
E_np, nu_np = np.load(sys.argv[1]), np.load(sys.argv[2])
dim = E_np.ndim
n = E_np.shape
nodes, elements = (rect_quad(n[1] + 1, n[0] + 1) if dim == 2 else cube_hexa(n[2] + 1, n[1] + 1, n[0] + 1))
centre = nodes[elements].mean(1)  # element centres (x, y[, z])
idx = tuple(torch.floor(centre[:, dim - 1 - a] * n[a]).long() for a in range(dim))  # array index (z, y, x)
E = torch.tensor(E_np)[idx].clone().requires_grad_()
nu = torch.tensor(nu_np)[idx]
t0 = time.perf_counter()
mat = (IsotropicElasticityPlaneStress if dim == 2 else IsotropicElasticity3D)(E, nu)
model = (Planar if dim == 2 else Solid)(nodes, elements, mat)
eps0 = 0.01
bnd = ((nodes <= 1e-9) | (nodes >= 1 - 1e-9)).any(1)
model.constraints[bnd, :] = True
model.displacements[bnd, :] = eps0 * nodes[bnd]
u, f, sigma, F, state = model.solve(differentiable_parameters=E)
H = F - torch.eye(dim) if float(F.diagonal(dim1=-2, dim2=-1).sum(-1).mean()) > 1 else F
tr_sig = sigma.diagonal(dim1=-2, dim2=-1).sum(-1).mean()
if dim == 2:
    ezz = (-nu / (1 - nu) * H.diagonal(dim1=-2, dim2=-1).sum(-1)).mean()
    K = tr_sig / (3 * (2 * eps0 + ezz))
else:
    K = tr_sig / (9 * eps0)
t1 = time.perf_counter()
K.backward()
t2 = time.perf_counter()
print(json.dumps({"K": float(K), "forward": t1 - t0, "gradient": t2 - t1}))
"""

JAXFEM_SCRIPT = r"""
import json, sys, time
import numpy as onp
import jax, jax.numpy as np
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_platform_name", "cpu")
from jax_fem import logger
logger.setLevel("WARNING")
from jax_fem.generate_mesh import Mesh, box_mesh, rectangle_mesh
from jax_fem.problem import Problem
from jax_fem.solver import ad_wrapper
E_np, nu_np = onp.load(sys.argv[1]), onp.load(sys.argv[2])
dim, n, eps0 = E_np.ndim, E_np.shape, 0.01
if dim == 2:
    mio, ele = rectangle_mesh(n[1], n[0], 1.0, 1.0), "QUAD4"
    cells = mio.cells_dict["quad"]
else:
    mio, ele = box_mesh(n[2], n[1], n[0], 1.0, 1.0, 1.0), "HEX8"
    cells = mio.cells_dict["hexahedron"]
mesh = Mesh(mio.points, cells, ele_type=ele)
centre = mesh.points[mesh.cells].mean(1)  # (x, y[, z]) -> array index (z, y, x)
idx = tuple(onp.floor(centre[:, dim - 1 - a] * n[a]).astype(int) for a in range(dim))
E0, nu0 = E_np[idx], nu_np[idx]


class Bulk(Problem):
    def get_tensor_map(self):
        def stress(u_grad, E, nu):
            eps = 0.5 * (u_grad + u_grad.T)
            if dim == 2:  # plane stress
                lam = E * nu / (1.0 - nu * nu)
            else:
                lam = E * nu / ((1.0 + nu) * (1.0 - 2.0 * nu))
            return lam * np.trace(eps) * np.eye(dim) + E / (1.0 + nu) * eps
        return stress

    def set_params(self, E):
        nq = self.fes[0].num_quads
        self.internal_vars = [np.repeat(E[:, None], nq, 1), np.repeat(np.asarray(nu0)[:, None], nq, 1)]


on_boundary = lambda p: np.any(np.isclose(p, 0.0, atol=1e-9) | np.isclose(p, 1.0, atol=1e-9))
bc = [[on_boundary] * dim, list(range(dim)), [(lambda p, i=i: eps0 * p[i]) for i in range(dim)]]
problem = Bulk(mesh, vec=dim, dim=dim, ele_type=ele, dirichlet_bc_info=bc)
opts = {sys.argv[3]: {}}  # "umfpack_solver" (scipy spsolve, as seed B) or "petsc_solver" (BiCGStab(l) + ILU)
fwd = ad_wrapper(problem, solver_options=opts, adjoint_solver_options=opts)
fe = problem.fes[0]
JxW = np.asarray(fe.JxW)  # (cells, quads)


def bulk(E):
    u_grad = fe.sol_to_grad(fwd(E)[0])  # (cells, quads, vec, dim)
    tr = np.trace(u_grad, axis1=-2, axis2=-1)
    nu = np.asarray(nu0)[:, None]
    if dim == 2:
        tr_sig = E[:, None] / (1.0 - nu) * tr
        tr_eps = tr - nu / (1.0 - nu) * tr
    else:
        tr_sig = E[:, None] / (1.0 - 2.0 * nu) * tr
        tr_eps = tr
    return np.sum(JxW * tr_sig) / (3.0 * np.sum(JxW * tr_eps))


def median_seconds(fn, repeats=3):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(onp.median(times)), out


E = np.asarray(E0)
bulk(E), jax.value_and_grad(bulk)(E)  # trace, compile and warm up: the timings are of later calls
repeats = int(sys.argv[4])
t_fwd, K = median_seconds(lambda: float(bulk(E)), repeats)
t_grad, _ = median_seconds(lambda: jax.value_and_grad(bulk)(E), repeats)
print(json.dumps({"K": K, "forward": t_fwd, "forward_and_gradient": t_grad}))
"""


def particle_sample(dim: int, n: int, batch: int, seed: int, dtype=torch.float32, contrast: float = 100.0):
    """Two-phase particles: E = contrast GPa in disks/spheres (r 0.12), 1 GPa matrix, nu 0.3 / 0.35."""
    g = torch.Generator().manual_seed(seed)
    axes = torch.meshgrid(*[(torch.arange(n, dtype=torch.float64) + 0.5) / n] * dim, indexing="ij")
    x = torch.stack(axes, -1)
    n_p = 8 if dim == 2 else 12
    centres = 0.12 + 0.76 * torch.rand(batch, n_p, dim, generator=g, dtype=torch.float64)
    dist = (x[None, ..., None, :] - centres.view(batch, *([1] * dim), n_p, dim)).norm(dim=-1)
    inside = (dist < 0.12).any(-1)
    E = torch.where(inside, contrast, 1.0).to(dtype)
    nu = torch.where(inside, 0.3, 0.35).to(dtype)
    return E, nu


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that wall-clock times include it (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# previous steps solved with the same WarmStart before the timed one: cold; warm (previous solution);
# warm + hierarchy (previous solution and the multigrid hierarchy kept from the warm-started second step)
WARM_MODES = {"cold": 0, "warm": 1, "warm+hierarchy": 2}
# our solver rows (solver:mode); direct runs 2D batches 1 and 8 in float64
CASES = ("mg:cold", "mg:warm", "mg:warm+hierarchy", "mg-operator:cold", "jacobi:cold", "direct:cold")


def time_ours(E, nu, solver, chunk, mode="cold"):
    """Seconds per sample of bulk_modulus forward + backward, iterations (affine, adjoint), K; the timed
    field follows WARM_MODES[mode] previous diffusion steps, fields within 1% of it."""
    ks, its, total, options = [], [], 0.0, SolveOptions(solver)
    for s in range(0, E.shape[0], chunk):
        e, v = E[s : s + chunk], nu[s : s + chunk]
        state = WarmStart()
        for step in range(WARM_MODES[mode], 0, -1):
            gen = torch.Generator().manual_seed(1000 * s + step)
            noise = 1.0 + 0.01 * torch.rand(e.shape, generator=gen, dtype=e.dtype).to(e.device)
            e_prev = (e * noise).requires_grad_()
            bulk_modulus(e_prev, v, warm_start=state, options=options).sum().backward()
        e = e.clone().requires_grad_()
        synchronize(e.device)
        t0 = time.perf_counter()
        k = bulk_modulus(e, v, warm_start=state, options=options)
        k.sum().backward()
        synchronize(e.device)
        total += time.perf_counter() - t0
        ks.append(k.detach())
        its.append(
            tuple(
                max([v for key, v in state.iterations.items() if key.startswith(kind)], default=0)
                for kind in ("affine", "adjoint")
            )
        )
    return total / E.shape[0], its[0], float(torch.cat(ks)[0])


def assemble(E: np.ndarray, nu: np.ndarray):
    """Sparse K_ff, rhs and affine field of one sample (float64): top88-style assembly."""
    dim = E.ndim
    el = E.shape
    lam, mu = lame(torch.tensor(E), torch.tensor(nu), dim)
    h = element_sizes(el)
    k_lam, k_mu = reference_matrices(h, torch.float64, "cpu")
    ke = (lam.reshape(-1, 1, 1) * k_lam + mu.reshape(-1, 1, 1) * k_mu).numpy()
    K = sparse_stiffness(ke, el, False)
    u_aff = affine_field(el, torch.eye(dim, dtype=torch.float64)[None], h).reshape(-1).numpy()
    free = np.flatnonzero(
        free_mask(el, False, torch.float64, "cpu").expand(1, 1, dim, *[m + 1 for m in el]).reshape(-1).numpy()
        > 0
    )
    rhs = -(K @ u_aff)[free]
    return K, free, rhs, u_aff


def k_from_solution(K, free, v, u_aff, E, nu):
    """Bulk modulus from the full displacement (energy form, as matdiff; square grids, the unit square)."""
    u = u_aff.copy()
    u[free] += v
    w2 = u @ (K @ u)
    if E.ndim == 3:
        return w2 / 9.0
    el = E.shape
    dvec = divergence_vector(element_sizes(el), torch.float64, "cpu")
    ue = u[element_dofs(el, False)]  # (n_el, n_loc)
    ezz = float((-(nu / (1 - nu)).reshape(-1) * (ue @ dvec.numpy())).sum())
    return w2 / (3.0 * (2.0 + ezz))


def time_scipy(E, nu):
    """spsolve forward only (assembly + solve), seconds, K."""
    import scipy.sparse.linalg as spla

    t0 = time.perf_counter()
    K, free, rhs, u_aff = assemble(E, nu)
    v = spla.spsolve(K[free][:, free].tocsc(), rhs)
    return time.perf_counter() - t0, k_from_solution(K, free, v, u_aff, E, nu)


def time_pyamg(E, nu):
    """pyamg smoothed aggregation + CG forward (assembly + setup + solve), seconds, iterations, K."""
    import pyamg

    t0 = time.perf_counter()
    K, free, rhs, u_aff = assemble(E, nu)
    A = K[free][:, free].tocsr()
    dim = E.ndim
    # rigid-body-free near null space: translations per component (dofs are component-major)
    B = np.eye(dim)[free // (len(u_aff) // dim)]
    ml = pyamg.smoothed_aggregation_solver(A, B=B)
    res = []
    v = ml.solve(rhs, tol=1e-8, accel="cg", residuals=res)
    return time.perf_counter() - t0, len(res) - 1, k_from_solution(K, free, v, u_aff, E, nu)


def time_torchfem(python, E, nu, threads):
    """torch-fem forward and gradient seconds and K from a subprocess in its own environment."""
    with tempfile.TemporaryDirectory() as tmp:
        pe, pn = os.path.join(tmp, "E.npy"), os.path.join(tmp, "nu.npy")
        np.save(pe, E.astype(np.float64))
        np.save(pn, nu.astype(np.float64))
        out = subprocess.run(
            [python, "-c", TORCHFEM_SCRIPT, pe, pn, str(threads)], capture_output=True, text=True, timeout=900
        )
    if out.returncode != 0:
        return None, out.stderr.strip().splitlines()[-1] if out.stderr else "failed"
    return json.loads(out.stdout.strip().splitlines()[-1]), ""


def time_jaxfem(python, E, nu, solver, repeats):
    """JAX-FEM forward and value_and_grad seconds (medians of `repeats` calls after a warm-up) and K.

    solver: JAX-FEM's "umfpack_solver" (scipy spsolve, seed B's choice) or "petsc_solver" (its default
    BiCGStab(l) + ILU, for 3D where a direct solve takes minutes).
    """
    with tempfile.TemporaryDirectory() as tmp:
        pe, pn = os.path.join(tmp, "E.npy"), os.path.join(tmp, "nu.npy")
        np.save(pe, E.astype(np.float64))
        np.save(pn, nu.astype(np.float64))
        out = subprocess.run(
            [python, "-c", JAXFEM_SCRIPT, pe, pn, solver, str(repeats)],
            capture_output=True,
            text=True,
            timeout=1800,
            cwd=tmp,
        )
    if out.returncode != 0:
        return None, out.stderr.strip().splitlines()[-1] if out.stderr else "failed"
    return json.loads(out.stdout.strip().splitlines()[-1]), ""


def device_name(device: torch.device) -> str:
    """The GPU's name, or "cpu"."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batches 1, 8, 16 instead of 1, 50, 200")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--chunk3d", type=int, default=25, help="3D samples per solve (memory)")
    parser.add_argument("--torchfem-python", default="/work/benchenv/bin/python")
    parser.add_argument("--jaxfem-python", default="/work/jaxenv/bin/python")
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--dims", default="2,3", help="which of 2D 64x64 / 3D 32^3 to run")
    parser.add_argument("--contrast", type=float, default=100.0, help="particle / matrix E")
    parser.add_argument("--device", default="cpu", help="device of our solver (cpu, cuda); peers run on CPU")
    parser.add_argument(
        "--cases", default=",".join(CASES), help="our solver:mode rows to run, of " + ",".join(CASES)
    )
    parser.add_argument(
        "--batches", help="comma-separated batch sizes of the multigrid rows (default by --quick)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    batches = (1, 8, 16) if args.quick else (1, 50, 200)
    if args.batches:
        batches = tuple(int(b) for b in args.batches.split(","))
    cases = args.cases.split(",")
    if not set(cases) <= set(CASES):
        parser.error(f"--cases: unknown {sorted(set(cases) - set(CASES))}; choose from {CASES}")
    print(
        f"# matdiff.fem benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{args.threads} threads, load average {os.getloadavg()[0]:.1f}, matdiff on {device_name(device)}"
    )
    print(
        f"Bulk modulus (affine BC), contrast-{args.contrast:g} particles, float32 PCG (rtol 1e-6), "
        "forward + gradient.\n"
    )
    print("| problem | method | batch | s / sample | iterations (fwd, adjoint) | K (sample 0) |")
    print("|---|---|---|---|---|---|")
    for dim, n in ((2, 64), (3, 32)):
        if str(dim) not in args.dims.split(","):
            continue
        name = f"{dim}D {n}^{dim}" if dim == 3 else f"2D {n}x{n}"
        E, nu = particle_sample(dim, n, max(batches), seed=0, contrast=args.contrast)
        E, nu = E.to(device), nu.to(device)
        chunk = args.chunk3d if dim == 3 else max(batches)
        for solver, mode in (case.split(":") for case in cases if not case.startswith("direct")):
            for b in batches if solver.startswith("mg") else (1,):
                # median of 3 calls for small batches (this CPU's timings vary by up to ~40% between calls)
                # and on CUDA (the first call of a shape also pays for allocations and kernel selection)
                repeats = 3 if b <= 8 or device.type == "cuda" else 1
                runs = [time_ours(E[:b], nu[:b], solver, min(chunk, b), mode) for _ in range(repeats)]
                t, its, k = float(np.median([r[0] for r in runs])), runs[0][1], runs[0][2]
                label = f"matdiff {solver}-PCG {mode}"
                print(f"| {name} | {label} | {b} | {t:.4f} | {its} | {k:.6f} |", flush=True)
        if dim == 2 and "direct:cold" in cases:
            for b in (1, 8):
                t, its, k = time_ours(E[:b].double().cpu(), nu[:b].double().cpu(), "direct", b)
                label = "matdiff direct (SuperLU, fwd + adjoint, float64)"
                print(f"| {name} | {label} | {b} | {t:.4f} | - | {k:.6f} |")
        if args.skip_peers:
            continue
        e0, n0 = E[0].double().cpu().numpy(), nu[0].double().cpu().numpy()
        if dim == 2:
            t, k = time_scipy(e0, n0)
            print(f"| {name} | scipy spsolve (forward only) | 1 | {t:.4f} | - | {k:.6f} |", flush=True)
        else:
            print(f"| {name} | scipy SuperLU | 1 | ~81 (DEPENDENCIES.md, not run) | - | - |")
        t, it, k = time_pyamg(e0, n0)
        label = "pyamg SA + CG (forward only, rtol 1e-8)"
        print(f"| {name} | {label} | 1 | {t:.4f} | {it} | {k:.6f} |", flush=True)
        if os.path.exists(args.torchfem_python):
            res, err = time_torchfem(args.torchfem_python, e0, n0, args.threads)
            if res is None:
                print(f"| {name} | torch-fem 0.14 | 1 | failed: {err[:80]} | - | - |")
            else:
                label = f"torch-fem 0.14 default (fwd {res['forward']:.2f} + grad {res['gradient']:.2f})"
                print(
                    f"| {name} | {label} | 1 | {res['forward'] + res['gradient']:.4f} | - | {res['K']:.6f} |",
                    flush=True,
                )
        if os.path.exists(args.jaxfem_python):
            solver, repeats = ("umfpack_solver", 3) if dim == 2 else ("petsc_solver", 1)
            res, err = time_jaxfem(args.jaxfem_python, e0, n0, solver, repeats)
            if res is None:
                print(f"| {name} | JAX-FEM 0.0.11 | 1 | failed: {err[:80]} | - | - |")
            else:
                label = f"JAX-FEM 0.0.11 {solver} (fwd {res['forward']:.2f}, after JIT warm-up)"
                print(
                    f"| {name} | {label} | 1 | {res['forward_and_gradient']:.4f} | - | {res['K']:.6f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
