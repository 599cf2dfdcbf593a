"""Tuning constants of the FEM solvers, each with the measurement that chose it.

Times are on the 2-core CPU these were measured on (torch 2.13, fused kernels unless said otherwise); the
iteration studies are in docs/benchmarks.md. A constant changes the speed of a solve, never its answer beyond
the solver tolerance.
"""

from __future__ import annotations

import torch

# Relative residual tolerance of PCG when ``SolveOptions.rtol`` is None, by dtype (the tolerance of every
# table in docs/benchmarks.md). Float32 stalls at its floor on extreme contrasts (evaluation.reevaluate then
# redoes a batch in float64); float64 at 1e-10 agrees with SuperLU to ~1e-9 (tests/fem/test_fem_solvers.py).
DEFAULT_RTOL = {torch.float32: 1e-6, torch.float64: 1e-10}

# PCG iteration limits when ``SolveOptions.maxiter`` is None: bounds, not targets. Multigrid at rtol 1e-6
# took 9-184 iterations on 2D 64^2 / 3D 32^3 particles of contrast 1-10000 (docs/benchmarks.md); Jacobi-PCG
# grows with the grid and the contrast.
DEFAULT_MAXITER_MULTIGRID = 500
DEFAULT_MAXITER_JACOBI = 20000

# elements per CPU solve (16 2D 64^2 / 2 3D 32^3 samples). Larger solves amortize the per-op cost, smaller
# ones keep the fields in the caches the fused kernels run from. Cold bulk modulus, forward + gradient, per
# sample on the 2-core CPU (2026-12-02, 64 2D / 8 3D samples): 2D 8 / 16 / 32 / 64 samples per solve
# 11.7-12.2 / 9.2-10.2 / 10.2 / 11.4-11.5 ms; 3D 1 / 2 / 4 / 8 samples 127-128 / 115-122 / 129-133 /
# 134-136 ms.
CPU_CHUNK_ELEMENTS = 2**16

# 2D elements per CPU solve (batch x grid) up to which "auto" picks the direct solver when no warm start is
# given, by boundary condition. Measured on the 2-core CPU (2 threads, 2026-12-02, fused kernels), forward +
# gradient per sample, median of 5, direct (SuperLU, float64) vs mg (float32, cold), contrast-100 particles:
#   affine (bulk_modulus): 16^2 x 1: 4.0 vs 10.1 ms; 16^2 x 8: 2.4 vs 2.4; 32^2 x 1: 12.6 vs 19.7; 32^2 x 2:
#   12.2 vs 11.1; 32^2 x 8: 10.6 vs 4.7; 64^2 x 1: 83 vs 26; 64^2 x 4: 80 vs 12.7.
#   periodic (homogenized_stiffness): 16^2 x 1: 5.4 vs 8.2; 16^2 x 8: 4.4 vs 2.2; 32^2 x 1: 23 vs 14;
#   64^2 x 1: 151 vs 20.
DIRECT_ELEMENTS_AFFINE = 32**2
DIRECT_ELEMENTS_PERIODIC = 16**2

# PCG drops converged samples once this share of the active ones has converged, so a batch costs about the
# mean of its samples' iteration counts, not the maximum (2D 64^2 particles, 32 samples: 23-46 iterations,
# mean 35).
COMPACT_FRACTION = 0.25

# a reused multigrid hierarchy is dropped (rebuilt on the next call) once a solve with it takes more than this
# many times the fewest PCG iterations it has had (counting the warm-started solve it was built in). Guided
# design, bundled 2D 32^2 model, 50 samples, 100 TFG steps (2-core CPU): 15-20 rebuilds, 7-15 iterations per
# solve as with a fresh hierarchy every step; never rebuilding let the counts drift to 20-41.
REBUILD_GROWTH = 1.25

# Coarsening stops once the largest axis has at most this many elements (2D / 3D; the coarsest level is
# solved densely). Coarsest 2D level 16x16 instead of 8x8 (2026-11-23, eager operators): 40 instead of 46
# iterations, but 35 vs 23 ms cold per sample.
COARSEST_ELEMENTS = {2: 8, 3: 4}

# Damped Jacobi sweeps before and after each coarse correction (V(1,1)). V(2,2) / two or three sweeps on the
# coarse levels cut the iterations (2D 46 -> 39 / 37, 3D 39 -> 33 / 30) but took the same time (2026-11-23).
SMOOTHER_SWEEPS = 1

# Jacobi damping omega = 4 / (3 lambda_max(D^-1 K)) per sample, lambda_max by this many power iterations
# times the safety factor. The usual omega = 0.6 assumes lambda_max ~ 2.2; 3D voxels with 100:1 contrast
# reach ~3.9, where 0.6 makes Jacobi amplify the stiffest modes. Larger damping (fewer power iterations or
# a smaller factor) saved 5-10% of the iterations, but 3 power iterations without the 1.15 factor diverged
# to 96-239 iterations in 3D (2026-11-23).
JACOBI_POWER_ITERATIONS = 6
JACOBI_SAFETY = 1.15

# floats (2 MB, the L2 cache here) of the product temporary up to which ``grid.local_matvec`` forms one
# product. Product vs columns: 3D 8^3 elements, one sample, 0.035 vs 0.13 ms; 2D 32^2, 64 samples, 0.96 vs
# 0.38 ms; 3D 16^3, one sample, 0.28-0.34 vs 0.58 ms alone but no faster inside a solve.
BROADCAST_LIMIT = 2**19

# Newton (``newton``): a load step has converged when the free-dof residual is at most NEWTON_RTOL times the
# norm of the internal forces (reactions included), in float64; at most NEWTON_MAXITER iterations, each with
# a backtracking line search on the potential (or the residual norm; sufficient decrease ARMIJO, at most
# LINE_SEARCH_HALVINGS halvings of alpha). Seed B's examples on 32^2 took 3-6 iterations per step.
NEWTON_RTOL = 1e-10
NEWTON_MAXITER = 30
LINE_SEARCH_HALVINGS = 12
ARMIJO = 1e-4
# Relative rounding allowance of the potential in the line search's Armijo test: near convergence a full
# Newton step changes the potential by ~|r|^2, far below float64's resolution of its value.
POTENTIAL_ROUNDING = 1e-12
# Tangent solves of Newton with solver "auto": banded Cholesky on the CPU up to this many elements, else
# multigrid PCG. 2D 32^2, contrast 100, one thread (2026-12-03): banded 1.6 ms per factorization, SuperLU
# 10-11 ms, multigrid PCG 50-100 iterations per tangent solve of a random binary field.
NEWTON_BANDED_ELEMENTS = 64**2
