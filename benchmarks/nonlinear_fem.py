"""Benchmark of matdiff's nonlinear FEM (seed B sec. 3.3, 3.4) against seed B's own FEM (JAX-FEM 0.0.11).

Usage: python benchmarks/nonlinear_fem.py [--threads N] [--batches 1,8] [--repeats 3]
       [--jaxfem-python /work/jaxenv/bin/python] [--skip-peers] [--quick] [--solver auto|banded|mg|direct]

Per design evaluation on 32x32 digit fields, CPU, float64:
- hyper: `matdiff.fem.strain_energy_curve` (Neo-Hookean, plane strain, E = 1 + 99 theta, nu = 0.3, 10 steps
  d = 0.05 ... 0.50), forward and forward + gradient of the loss sum_i (W_i - T_i)^2 / 10 w.r.t. theta
  (T: seed B's eq. 34 target with alpha = 0.3);
- plastic: `matdiff.fem.stress_displacement_curve` (J2, E = 1e3 + 99e3 theta_E, sigma_0 = 30 + 270 theta_s,
  20 increments 0.0005 i), forward and forward + gradient of sum_i (s_i - s*_i)^2 / 20 w.r.t. both fields
  (s*: eq. 39, Table 1 group 1) through the path adjoint.
The peer is JAX-FEM 0.0.11 as genopt (CMSL-HKUST/genopt, fem/hyperelasticity.py, fem/plasticity.py) runs it:
QUAD4 rectangle_mesh, Problem + ad_wrapper with umfpack_solver (scipy spsolve) and line search, a Python loop
over the load steps each solved from u = 0, jax.value_and_grad of the loss through ad_wrapper's adjoint. It
is our own script (PEER_SCRIPT), run as a subprocess in its own benchmark-only venv (docs/benchmarks.md says
how it is made; PETSc is a ~12-minute source build), on sample 0 of each case, after one warm-up call.
Prints a markdown table; the curves and gradients of sample 0 are compared between the two codes.
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

from matdiff.fem import SolveOptions, strain_energy_curve, stress_displacement_curve
from matdiff.guidance.noise_objectives import (
    ENERGY_DISPLACEMENTS,
    STRESS_DISPLACEMENTS,
    energy_target,
    stress_target,
)
from matdiff.styles.digits import digits_dataset

E_HYPER = (1.0, 99.0)  # E = 1 + 99 theta
E_PLASTIC = (1e3, 99e3)  # E = 1e3 + (1e5 - 1e3) theta_E
SIGMA0_PLASTIC = (30.0, 270.0)  # sigma_0 = 30 + (300 - 30) theta_s
NU = 0.3


# The peer: JAX-FEM 0.0.11 set up the way genopt's fem/ code sets it up (facts from that code; our own text).
# argv: case (hyper|plastic), fields .npz (theta, or theta_E and theta_s: images (H, W), row 0 = top),
# repeats. Prints one JSON line last (the line search of jax_fem prints to stdout on every Newton iteration).
PEER_SCRIPT = r"""
import json, sys, time
import numpy as onp
import jax, jax.numpy as np
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_platform_name", "cpu")
import jax_fem
from jax_fem import logger
logger.setLevel("WARNING")
import jax_fem.solver as jsolver
from jax_fem.generate_mesh import Mesh, rectangle_mesh
from jax_fem.problem import Problem
from jax_fem.solver import ad_wrapper

case, fields, repeats = sys.argv[1], onp.load(sys.argv[2]), int(sys.argv[3])
ds = onp.array(json.loads(sys.argv[4]))
target = np.array(json.loads(sys.argv[5]))
first = fields["theta"] if case == "hyper" else fields["theta_E"]
H, W = first.shape
mio = rectangle_mesh(W, H, 1.0, 1.0)
mesh = Mesh(mio.points, mio.cells_dict["quad"], ele_type="QUAD4")
centre = mesh.points[mesh.cells].mean(1)
rows = H - 1 - onp.floor(centre[:, 1] * H).astype(int)  # image row 0 = top row of elements
cols = onp.floor(centre[:, 0] * W).astype(int)
# genopt: theta = sample[::-1, :].reshape(-1, order="F") gives the same cell order
ids = onp.arange(H * W).reshape(H, W)
assert (ids[rows, cols] == ids[::-1].reshape(-1, order="F")).all()

newton_calls = [0]
_inc = jsolver.linear_incremental_solver
def counting_inc(*a, **k):  # one call per Newton iteration (jax_fem.solver.solver looks it up at call time)
    newton_calls[0] += 1
    return _inc(*a, **k)
jsolver.linear_incremental_solver = counting_inc

top = lambda p: np.isclose(p[1], 1.0, atol=1e-5)
bottom = lambda p: np.isclose(p[1], 0.0, atol=1e-5)
corner = lambda p: np.isclose(p[0], 0.0, atol=1e-5) & np.isclose(p[1], 0.0, atol=1e-5)
zero = lambda p: 0.0
def top_value(d):
    return lambda p: d
if case == "hyper":  # bottom clamped, top u_y = d, u_x free
    bc = [[bottom, bottom, top], [0, 1, 1], [zero, zero, top_value(ds[0])]]
else:  # bottom u_y = 0, bottom-left corner u_x = 0, top u_y = d
    bc = [[corner, bottom, top], [0, 1, 1], [zero, zero, top_value(ds[0])]]


def neo_hookean_energy(F2, E):
    F = np.zeros((3, 3)).at[:2, :2].set(F2).at[2, 2].set(1.0)  # plane strain
    J = np.linalg.det(F)
    mu, kappa = E / (2.0 * (1.0 + 0.3)), E / (3.0 * (1.0 - 2.0 * 0.3))
    return 0.5 * mu * (J ** (-2.0 / 3.0) * np.trace(F.T @ F) - 3.0) + 0.5 * kappa * (J - 1.0) ** 2


def j2_return(u_grad, sigma_old, eps_old, E, sig0):
    eps = 0.5 * (u_grad + u_grad.T)
    de = eps - eps_old
    lam, mu = E * 0.3 / (1.3 * 0.4), E / 2.6
    trial = sigma_old + lam * np.trace(de) * np.eye(2) + 2.0 * mu * de
    s = trial - 0.5 * np.trace(trial) * np.eye(2)  # genopt's 2-D deviator
    s_eq2 = 1.5 * np.sum(s * s)
    s_eq = np.where(s_eq2 > 0.0, np.sqrt(np.where(s_eq2 > 0.0, s_eq2, 1.0)), 0.0)
    over = np.maximum(s_eq - sig0, 0.0)
    return trial - np.where(s_eq > 0.0, over / np.where(s_eq > 0.0, s_eq, 1.0), 0.0) * s


class Hyper(Problem):
    def get_tensor_map(self):
        P = jax.grad(neo_hookean_energy)
        return lambda u_grad, E: P(u_grad + np.eye(2), E)

    def set_params(self, params):
        self.internal_vars = [params]


class Plastic(Problem):
    def get_tensor_map(self):
        return j2_return

    def set_params(self, params):
        self.internal_vars = list(params)


problem = (Hyper if case == "hyper" else Plastic)(mesh, vec=2, dim=2, ele_type="QUAD4", dirichlet_bc_info=bc)
fe = problem.fes[0]
nq = fe.num_quads
fwd = ad_wrapper(problem, solver_options={"umfpack_solver": {}, "line_search_flag": True},
                 adjoint_solver_options={"umfpack_solver": {}})
per_step = []


def set_step(d):
    bc[2][-1] = top_value(d)
    fe.update_Dirichlet_boundary_conditions(bc)


def curve(thetas):
    per_step.clear()
    out = []
    if case == "hyper":
        E = np.repeat((1.0 + 99.0 * thetas[0])[:, None], nq, 1)
        for d in ds:
            set_step(d)
            before = newton_calls[0]
            u = fwd(E)[0]
            per_step.append(newton_calls[0] - before)
            F = fe.sol_to_grad(u) + np.eye(2)
            out.append(np.sum(jax.vmap(jax.vmap(neo_hookean_energy))(F, E) * fe.JxW))
    else:
        E = np.repeat((1e3 + 99e3 * thetas[0])[:, None], nq, 1)
        s0 = np.repeat((30.0 + 270.0 * thetas[1])[:, None], nq, 1)
        sigma = np.zeros((len(fe.cells), nq, 2, 2))
        eps = np.zeros_like(sigma)
        for d in ds:
            set_step(d)
            before = newton_calls[0]
            u = fwd((sigma, eps, E, s0))[0]
            per_step.append(newton_calls[0] - before)
            g = fe.sol_to_grad(u)
            sigma = jax.vmap(jax.vmap(j2_return))(g, sigma, eps, E, s0)
            eps = 0.5 * (g + np.swapaxes(g, -1, -2))
            out.append(np.sum(sigma[..., 1, 1] * fe.JxW) / np.sum(fe.JxW))
    return np.stack(out)


def loss(thetas):
    return np.sum((curve(thetas) - target) ** 2) / len(ds)


names = ["theta"] if case == "hyper" else ["theta_E", "theta_s"]
thetas = tuple(np.asarray(fields[n][rows, cols]) for n in names)
value_and_grad = jax.value_and_grad(loss)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    jax.block_until_ready(out)
    return time.perf_counter() - t0, out


first_forward, values = timed(lambda: curve(thetas))
steps = list(per_step)
first_gradient, _ = timed(lambda: value_and_grad(thetas))
forward = [timed(lambda: curve(thetas))[0] for _ in range(repeats)]
gradient, out = [], None
for _ in range(repeats):
    t, out = timed(lambda: value_and_grad(thetas))
    gradient.append(t)
grads = []
for g in out[1]:
    img = onp.zeros((H, W))
    img[rows, cols] = onp.asarray(g)
    grads.append(img.tolist())
print(json.dumps({
    "curve": onp.asarray(values).tolist(), "loss": float(out[0]), "grads": grads, "newton": steps,
    "first_forward": first_forward, "first_gradient": first_gradient,
    "forward": float(onp.median(forward)), "forward_and_gradient": float(onp.median(gradient)),
    "jax": jax.__version__, "jax_fem": getattr(jax_fem, "__version__", "0.0.11"),
}))
"""


def digit_fields(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two stacks of n digit fields in [0, 1] (32x32, row 0 = top), the second of other digits than the
    first, pair by pair (theta_E and theta_sigma0 of the plastic case)."""
    x, labels = digits_dataset()
    fields = (torch.tensor(np.asarray(x[:, 0]), dtype=torch.float64) + 1.0) / 2.0
    a = list(range(n))
    pool = [i for i in range(n, len(labels))]
    b = []
    for i in a:
        j = next(j for j in pool if labels[j] != labels[i])
        pool.remove(j)
        b.append(j)
    return fields[a].clamp(0, 1), fields[b].clamp(0, 1)


def run_ours(case: str, theta: tuple[torch.Tensor, ...], options: SolveOptions, grad: bool):
    """One evaluation of a batch of designs: seconds, the curves (B, n), the gradients (or None) and the
    Newton iterations (B, n)."""
    thetas = [t.detach().clone().requires_grad_(grad) for t in theta]
    t0 = time.perf_counter()
    with torch.set_grad_enabled(grad):
        if case == "hyper":
            E = E_HYPER[0] + E_HYPER[1] * thetas[0]
            res = strain_energy_curve(E, torch.full_like(E, NU), ENERGY_DISPLACEMENTS, options=options,
                                      return_result=True)  # fmt: skip
            target = energy_target(0.3)
        else:
            E = E_PLASTIC[0] + E_PLASTIC[1] * thetas[0]
            s0 = SIGMA0_PLASTIC[0] + SIGMA0_PLASTIC[1] * thetas[1]
            res = stress_displacement_curve(E, torch.full_like(E, NU), s0, STRESS_DISPLACEMENTS,
                                            options=options, return_result=True)  # fmt: skip
            target = stress_target(1)
        if grad:
            loss = ((res.values - target) ** 2).sum() / target.numel()
            loss.backward()
    seconds = time.perf_counter() - t0
    grads = [t.grad.detach() for t in thetas] if grad else None
    return seconds, res.values.detach(), grads, res.status.newton_iterations


def time_ours(case, theta, options, repeats):
    """Median seconds per design of forward and forward + gradient, curves, gradients, Newton its."""
    b = theta[0].shape[0]
    fwd = [run_ours(case, theta, options, False) for _ in range(repeats)]
    both = [run_ours(case, theta, options, True) for _ in range(repeats)]
    t_f = float(np.median([r[0] for r in fwd])) / b
    t_g = float(np.median([r[0] for r in both])) / b
    return t_f, t_g, both[0][1], both[0][2], fwd[0][3]


def time_peer(python: str, case: str, theta: tuple[torch.Tensor, ...], repeats: int, threads: int):
    """The JAX-FEM peer on one design (a subprocess): its JSON, or None and the error's last line."""
    if case == "hyper":
        ds, target = ENERGY_DISPLACEMENTS, energy_target(0.3)
        arrays = {"theta": theta[0].numpy()}
    else:
        ds, target = STRESS_DISPLACEMENTS, stress_target(1)
        arrays = {"theta_E": theta[0].numpy(), "theta_s": theta[1].numpy()}
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    if threads == 1:  # XLA's CPU thread pool otherwise takes every core
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "fields.npz")
        np.savez(path, **arrays)
        argv = [python, "-c", PEER_SCRIPT, case, path, str(repeats), json.dumps(list(ds)),
                json.dumps(target.tolist())]  # fmt: skip
        out = subprocess.run(argv, capture_output=True, text=True, timeout=3600, cwd=tmp, env=env)
    if out.returncode != 0:
        return None, (out.stderr.strip().splitlines() or ["failed"])[-1]
    return json.loads(out.stdout.strip().splitlines()[-1]), ""


def newton_summary(its) -> str:
    """Mean Newton iterations per step (min-max)."""
    its = np.asarray(its, dtype=float)
    return f"{its.mean():.1f} ({int(its.min())}-{int(its.max())})"


def max_rel(a, b) -> float:
    """max_i |a_i - b_i| / |b_i|."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b) / np.abs(b)))


def rel_norm(a, b) -> float:
    """||a - b|| / ||b||."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (else platform.processor())."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str:
    """Short commit of the working tree (+ "-dirty" when it has changes), or "?"."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=10).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()  # fmt: skip
        return sha + ("-dirty" if dirty else "") if sha else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--batches", default="1,8", help="comma-separated batch sizes of matdiff's rows")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per row (median)")
    parser.add_argument("--jaxfem-python", default="/work/jaxenv/bin/python")
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--quick", action="store_true", help="batch 1 only, 1 repeat")
    parser.add_argument("--cases", default="hyper,plastic")
    parser.add_argument(
        "--solver",
        default="auto",
        choices=("auto", "banded", "mg", "direct"),
        help="matdiff's tangent solves",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batches = (1,) if args.quick else tuple(int(b) for b in args.batches.split(","))
    repeats = 1 if args.quick else args.repeats
    options = SolveOptions(solver=args.solver)
    cases = args.cases.split(",")
    if not set(cases) <= {"hyper", "plastic"}:
        parser.error(f"--cases: unknown {sorted(set(cases) - {'hyper', 'plastic'})}")
    print(
        f"# matdiff nonlinear FEM benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{cpu_model()}, {os.cpu_count()} cores, {args.threads} threads, load average "
        f"{os.getloadavg()[0]:.1f}, torch {torch.__version__}, matdiff commit {git_commit()}, "
        f"solver {args.solver}, median of {repeats}"
    )
    first_theta, second_theta = digit_fields(max(batches))
    rows, notes = [], []
    for case in cases:
        theta_all = (first_theta,) if case == "hyper" else (first_theta, second_theta)
        # warm-up (compiles matdiff's C++ kernels on a fresh checkout): the timed calls are later ones
        t0 = time.perf_counter()
        run_ours(case, tuple(t[:1] for t in theta_all), options, True)
        notes.append(
            f"{case}: matdiff first call (B = 1, forward + gradient) {time.perf_counter() - t0:.2f} s"
        )
        ours0 = None
        for b in batches:
            theta = tuple(t[:b] for t in theta_all)
            t_f, t_g, values, grads, its = time_ours(case, theta, options, repeats)
            if b == batches[0]:
                ours0 = (values[0], [g[0] for g in grads])
            rows.append([case, f"matdiff ({args.solver})", b, t_f, t_g, newton_summary(its), "-"])
            print(f"  {case} B={b}: fwd {t_f:.4f} s, fwd+grad {t_g:.4f} s per design", flush=True)
        if args.skip_peers:
            continue
        if not os.path.exists(args.jaxfem_python):
            notes.append(f"{case}: JAX-FEM not run ({args.jaxfem_python} missing)")
            continue
        res, err = time_peer(args.jaxfem_python, case, tuple(t[0] for t in theta_all), repeats, args.threads)
        if res is None:
            notes.append(f"{case}: JAX-FEM failed: {err[:200]}")
            continue
        agree = max_rel(ours0[0].numpy(), res["curve"])
        grad_diff = [rel_norm(g.numpy(), gj) for g, gj in zip(ours0[1], res["grads"], strict=True)]
        label = f"JAX-FEM {res['jax_fem']} umfpack (JAX {res['jax']})"
        newton = newton_summary(res["newton"])
        rows.append([case, label, 1, res["forward"], res["forward_and_gradient"], newton, f"{agree:.1e}"])
        notes.append(
            f"{case}: JAX-FEM first call {res['first_forward']:.2f} s forward, {res['first_gradient']:.2f} s "
            f"forward + gradient; gradient rel. difference (L2) of "
            + ", ".join(
                f"{n} {d:.1e}"
                for n, d in zip(
                    ("theta_E", "theta_s") if case == "plastic" else ("theta",), grad_diff, strict=True
                )
            )  # fmt: skip
            + f"; JAX-FEM curve {np.array2string(np.asarray(res['curve']), precision=5, max_line_width=200)}"
        )
        for row in rows:
            if row[0] == case and row[1].startswith("matdiff"):
                row.append(f"{res['forward'] / row[3]:.0f}x / {res['forward_and_gradient'] / row[4]:.0f}x")
    print()
    print("| case | code | B | forward s / design | forward + gradient s / design | Newton it. / step, mean "
          "(range) | curve max rel. diff. vs matdiff | speed-up (fwd / fwd+grad) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        case, code, b, t_f, t_g, its, agree = row[:7]
        speed = row[7] if len(row) > 7 else "-"
        print(f"| {case} | {code} | {b} | {t_f:.4f} | {t_g:.4f} | {its} | {agree} | {speed} |")
    for note in notes:
        print(f"\n{note}")


if __name__ == "__main__":
    main()
