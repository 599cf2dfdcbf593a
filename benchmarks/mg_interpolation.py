"""Coarse-space study for issue 4: PCG iterations of a multigrid V-cycle with geometric (bilinear) vs
operator-dependent (collapsed-stencil, BoxMG-like) prolongation, 2D affine-BC bulk-modulus problem.

Usage: python benchmarks/mg_interpolation.py [--size 64] [--contrast 100]
       python benchmarks/mg_interpolation.py --matdiff   (matdiff.fem: solver "mg" vs "mg-operator")

A scipy reference, not a solver: assembled sparse matrices, Galerkin coarse operators P^T A P, damped
Jacobi with matdiff's weight 4 / (3 * 1.15 * lambda_max(D^-1 A)), exact coarsest solve, PCG to a relative
residual of 1e-6, float64. It prints iteration counts only (its Python loops make it slow). With geometric
prolongation it reproduces matdiff.fem's own counts, so the operator-dependent rows show what that
interpolation would save. Collapsed-stencil prolongation: coarse nodes are injected; a fine node between
two coarse nodes takes -A~_0^-1 (A~_-1 u_left + A~_+1 u_right) with its 3x3 block stencil summed across the
edge (2x2 blocks, both displacement components coupled); a cell-centre node solves its own row given its
eight neighbours. Both depend only on data shared by the coarse cells that meet there, so the fine field of
a coarse cell is a function of its four vertices and the Galerkin coarse operator stays element-based.
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from fem import particle_sample
from matdiff.fem.elements import element_sizes
from matdiff.fem.grid import affine_field, free_mask
from matdiff.fem.laws import LinearElastic, lame, reference_matrices
from matdiff.fem.solvers import sparse_stiffness


def assemble(E: np.ndarray, nu: np.ndarray) -> sp.csr_matrix:
    """Plane-stress stiffness of an (m, m) element grid; dof = comp * n_nodes + node (matdiff's order)."""
    lam, mu = lame(torch.tensor(E), torch.tensor(nu), 2)
    k_lam, k_mu = reference_matrices(element_sizes(E.shape), torch.float64, "cpu")
    ke = (lam.reshape(-1, 1, 1) * k_lam + mu.reshape(-1, 1, 1) * k_mu).numpy()
    return sparse_stiffness(ke, E.shape, False).tocsr()


def dofs(i: int, j: int, n: int) -> list[int]:
    """The two dofs of node (i, j) on an n x n node grid."""
    return [c * n * n + i * n + j for c in range(2)]


def block(A: sp.csr_matrix, n: int, node: tuple[int, int], other: tuple[int, int]) -> np.ndarray:
    """2x2 block of A between two nodes."""
    return A[dofs(*node, n)][:, dofs(*other, n)].toarray()


def prolongation(A: sp.csr_matrix, n: int, operator_dependent: bool) -> sp.csr_matrix:
    """P from the (n + 1) / 2 coarse node grid to the n x n fine node grid (2 dofs per node)."""
    nc = (n + 1) // 2
    P = sp.lil_matrix((2 * n * n, 2 * nc * nc))

    def put(fine, coarse, W):
        for a, r in enumerate(dofs(*fine, n)):
            for b, c in enumerate(dofs(*coarse, nc)):
                P[r, c] += W[a, b]

    centres = []
    for i in range(n):
        for j in range(n):
            odd_i, odd_j = i % 2, j % 2
            boundary = i in (0, n - 1) or j in (0, n - 1)
            if not odd_i and not odd_j:
                put((i, j), (i // 2, j // 2), np.eye(2))
            elif not operator_dependent or boundary:
                for di in (-1, 1) if odd_i else (0,):
                    for dj in (-1, 1) if odd_j else (0,):
                        w = (0.5 if odd_i else 1.0) * (0.5 if odd_j else 1.0)
                        put((i, j), ((i + di) // 2, (j + dj) // 2), w * np.eye(2))
            elif odd_i and odd_j:
                centres.append((i, j))
            else:  # edge node: collapse the stencil across the coarse edge
                along = (0, 1) if odd_j else (1, 0)
                across = (1, 0) if odd_j else (0, 1)
                collapsed = {
                    s: sum(
                        block(
                            A, n, (i, j), (i + s * along[0] + p * across[0], j + s * along[1] + p * across[1])
                        )
                        for p in (-1, 0, 1)
                    )
                    for s in (-1, 0, 1)
                }
                inv = np.linalg.inv(collapsed[0])
                for s in (-1, 1):
                    put((i, j), ((i + s * along[0]) // 2, (j + s * along[1]) // 2), -inv @ collapsed[s])
    P = P.tocsr()
    if not centres:
        return P
    P = P.tolil()
    for i, j in centres:  # own row, neighbours' values already interpolated
        inv = np.linalg.inv(block(A, n, (i, j), (i, j)))
        row = sum(
            -inv @ block(A, n, (i, j), (i + di, j + dj)) @ P[dofs(i + di, j + dj, n)].toarray()
            for di in (-1, 0, 1)
            for dj in (-1, 0, 1)
            if (di, dj) != (0, 0)
        )
        for a, r in enumerate(dofs(i, j, n)):
            P[r, :] = row[a]
    return P.tocsr()


def hierarchy(A, n, free, coarsenings, operator_dependent):
    """Operators, prolongations and free-dof masks of all levels (Galerkin coarse operators)."""
    As, Ps, frees = [A], [], [free]
    for _ in range(coarsenings):
        nc = (n + 1) // 2
        P = prolongation(As[-1], n, operator_dependent)
        coarse_free = frees[-1].reshape(2, n, n)[:, ::2, ::2].reshape(-1)
        P = (sp.diags(frees[-1].astype(float)) @ P @ sp.diags(coarse_free.astype(float))).tocsr()
        As.append((P.T @ As[-1] @ P).tocsr() + sp.diags((~coarse_free).astype(float)))
        Ps.append(P)
        frees.append(coarse_free)
        n = nc
    return As, Ps, frees


def v_cycle(As, Ps, frees, sweeps):
    """Symmetric V(sweeps, sweeps) preconditioner with damped Jacobi and an exact coarsest solve."""
    dinvs, omegas = [], []
    for A, f in zip(As, frees, strict=True):
        dinv = f / np.where(f, A.diagonal(), 1.0)
        s = sp.diags(np.sqrt(dinv[f]))
        lam_max = spla.eigsh(s @ A[f][:, f] @ s, k=1, which="LA", return_eigenvectors=False)[0]
        dinvs.append(dinv)
        omegas.append(4.0 / (3.0 * 1.15 * lam_max))
    lu = spla.splu(As[-1].tocsc())

    def cycle(level, r):
        if level == len(As) - 1:
            return lu.solve(r) * frees[-1]
        A, wd = As[level], omegas[level] * dinvs[level]
        x = wd * r
        for _ in range(sweeps - 1):
            x = x + wd * (r - A @ x)
        x = x + Ps[level] @ cycle(level + 1, Ps[level].T @ ((r - A @ x) * frees[level]))
        for _ in range(sweeps):
            x = x + wd * (r - A @ x)
        return x

    return lambda r: cycle(0, r)


def pcg_iterations(A, b, precond, rtol=1e-6, maxiter=500) -> int:
    """Iterations of PCG from 0 to ||r|| <= rtol ||b||."""
    x, r = np.zeros_like(b), b.copy()
    z = precond(r)
    p, rz = z.copy(), r @ z
    for it in range(1, maxiter + 1):
        ap = A @ p
        alpha = rz / (p @ ap)
        x += alpha * p
        r -= alpha * ap
        if np.linalg.norm(r) <= rtol * np.linalg.norm(b):
            return it
        z = precond(r)
        rz, rz_old = r @ z, rz
        p = z + rz / rz_old * p
    return maxiter


def matdiff_iterations() -> None:
    """PCG iterations of matdiff.fem's multigrid with linear ("mg") and operator-dependent ("mg-operator")
    prolongation, one particle sample per case, float32, rtol 1e-6, both boundary conditions."""
    from matdiff.fem import SolveOptions
    from matdiff.fem.problems import affine_solve, periodic_solve
    from matdiff.fem.solvers import LinearSystem

    torch.set_num_threads(1)
    print(
        "| case | contrast | affine BC: mg / mg-operator | periodic BC: mg / mg-operator |\n|---|---|---|---|"
    )
    for dim, n in ((2, 64), (3, 32)):
        for contrast in (1.0, 100.0, 1000.0, 10000.0):
            law = LinearElastic(*lame(*particle_sample(dim, n, 1, seed=0, contrast=contrast), dim))
            cells = []
            for solve, periodic in ((affine_solve, False), (periodic_solve, True)):
                op = law.operator(periodic)
                its = [
                    solve(LinearSystem(op, SolveOptions(s)), op.h)[2].iterations
                    for s in ("mg", "mg-operator")
                ]
                cells.append(f"{its[0]} / {its[1]}")
            name = f"{dim}D {n}^{dim}" if dim == 3 else f"2D {n}x{n}"
            print(f"| {name} particles | {contrast:g} | {cells[0]} | {cells[1]} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--contrast", type=float, default=100.0, help="particle / matrix E (matrix 1 GPa)")
    parser.add_argument(
        "--matdiff", action="store_true", help="iteration table of matdiff.fem's two prolongations"
    )
    args = parser.parse_args()
    if args.matdiff:
        matdiff_iterations()
        return
    m, n = args.size, args.size + 1
    E, nu = (a[0].double().numpy() for a in particle_sample(2, m, 1, seed=0, contrast=args.contrast))
    free = free_mask((m, m), False, torch.float64, "cpu").expand(1, 1, 2, n, n).reshape(-1).numpy() > 0
    mask = sp.diags(free.astype(float))
    A = (mask @ assemble(E, nu) @ mask + sp.diags((~free).astype(float))).tocsr()
    u_affine = affine_field((m, m), torch.eye(2, dtype=torch.float64)[None], element_sizes((m, m)))
    u_affine = u_affine.reshape(-1).numpy()
    b = -(assemble(E, nu) @ u_affine) * free
    print(f"2D {m}x{m} particles, contrast {args.contrast:g}, affine BC, PCG rtol 1e-6: iterations\n")
    print("| prolongation | coarsenings | V(1,1) | V(2,2) |\n|---|---|---|---|")
    for operator_dependent in (False, True):
        for coarsenings in (1, 3):
            As, Ps, frees = hierarchy(A, n, free, coarsenings, operator_dependent)
            its = [pcg_iterations(A, b, v_cycle(As, Ps, frees, s)) for s in (1, 2)]
            name = "collapsed stencil" if operator_dependent else "geometric (bilinear)"
            print(f"| {name} | {coarsenings} | {its[0]} | {its[1]} |", flush=True)


if __name__ == "__main__":
    main()
