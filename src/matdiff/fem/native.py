"""The fused CPU stiffness product (``voxel_kernels.cpp``): compiled once per machine with the system C++
compiler, loaded with ctypes, used by the operators for K u on CPU tensors.

The library is built on first use into ``$MATDIFF_CACHE`` (default ``~/.cache/matdiff``) under a name
that hashes the source, the compiler command and the CPU's flags, so an edited source or another machine
builds its own copy. Each build happens in a private temporary folder and is moved into the cache
atomically with a SHA-256 record of its bytes beside it (``<name>.so.sha256``); a library is loaded only
from a cache folder that no other user can write, and only if its bytes match their record: a planted or
truncated file is rebuilt, never run. Where it cannot be built (no compiler) or is switched off
(``MATDIFF_NATIVE=0``), and for CUDA tensors, the operators use their PyTorch path, which computes the same
product.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("voxel_kernels.cpp")
FLAGS = ["-O3", "-march=native", "-mprefer-vector-width=512", "-fopenmp", "-shared", "-fPIC", "-std=c++17"]


def _cpu_flags() -> str:
    """The CPU's feature flags (Linux), part of the build key because of -march=native."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return platform.processor()


def library_path(compiler: str) -> Path:
    """Where the library built by `compiler` from the current source for this CPU lives."""
    key = hashlib.sha256()
    for part in (SOURCE.read_bytes(), compiler.encode(), " ".join(FLAGS).encode(), _cpu_flags().encode()):
        key.update(part)
    cache = Path(os.environ.get("MATDIFF_CACHE", Path.home() / ".cache" / "matdiff"))
    return cache / f"voxel_kernels-{key.hexdigest()[:16]}.so"


class UntrustedLibrary(OSError):
    """A cached library that may not be loaded: its folder is writable by others, or its bytes do not match
    the hash recorded when it was built."""


def record_path(path: Path) -> Path:
    """The SHA-256 record written beside a built library."""
    return path.with_name(path.name + ".sha256")


def _sha256(data: bytes) -> str:
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def _recorded(path: Path) -> str | None:
    """The hash recorded for a library, None when there is no record."""
    try:
        return record_path(path).read_text().strip()
    except OSError:
        return None


def check_private(folder: Path) -> None:
    """UntrustedLibrary unless ``folder`` belongs to this user and no one else can write it."""
    info = folder.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise UntrustedLibrary(f"{folder} is writable by other users (or not ours); its code is not loaded")


def build(compiler: str) -> Path:
    """Compile the kernels unless a library matching its record is already cached; returns its path."""
    path = library_path(compiler)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    check_private(path.parent)
    if path.exists() and _recorded(path) == _sha256(path.read_bytes()):
        return path
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:  # mode 0700: private until moved
        out = Path(tmp) / path.name
        subprocess.run(
            [compiler, *FLAGS, str(SOURCE), "-o", str(out)], check=True, capture_output=True, text=True
        )
        record = record_path(out)
        record.write_text(_sha256(out.read_bytes()))
        os.replace(out, path)  # atomic: concurrent builders leave one complete file (and its record)
        os.replace(record, record_path(path))
    return path


def load(path: Path) -> ctypes.CDLL:
    """The library at ``path`` if its folder is private (``check_private``: no one else can swap the file
    between the check and the load) and its bytes match their record, else UntrustedLibrary."""
    check_private(path.parent)
    if _sha256(path.read_bytes()) != _recorded(path):
        raise UntrustedLibrary(f"{path} does not match its recorded SHA-256; not loaded")
    return ctypes.CDLL(str(path))


def _signatures(lib: ctypes.CDLL) -> None:
    ptr, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    product = [ptr, ptr, i64, i64, i32, ptr, i32, i32, ptr, ptr, i32]
    for dtype in ("f32", "f64"):
        getattr(lib, f"matdiff_isotropic_{dtype}").argtypes = [*product, ptr, ptr, ptr]
        getattr(lib, f"matdiff_packed_{dtype}").argtypes = [*product, ptr]
        getattr(lib, f"matdiff_prolong_{dtype}").argtypes = [ptr, ptr, ptr, i64, i32, ptr, i32, i32]
        getattr(lib, f"matdiff_restrict_{dtype}").argtypes = [ptr, ptr, i64, i32, ptr, i32, i32]
        getattr(lib, f"matdiff_pack_{dtype}").argtypes = [ptr, ptr, i64, i32, ptr, i32]
        getattr(lib, f"matdiff_dot_{dtype}").argtypes = [ptr, ptr, ptr, i64, i64, i32]
        getattr(lib, f"matdiff_cg_update_{dtype}").argtypes = [ptr, ptr, ptr, ptr, ptr, ptr, i64, i64, i32]


def find_compiler() -> str | None:
    """The C++ compiler: $CXX, else g++ or c++ on the PATH; None when there is none."""
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")


@functools.cache
def library() -> ctypes.CDLL | None:
    """The loaded kernels, or None where they are switched off or cannot be built (warns once)."""
    if os.environ.get("MATDIFF_NATIVE", "1") == "0":
        return None
    compiler = find_compiler()
    if compiler is None:
        warnings.warn("matdiff.fem: no C++ compiler; the slower PyTorch products are used", stacklevel=2)
        return None
    try:
        lib = load(build(compiler))
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", "") or str(err)
        warnings.warn(
            f"matdiff.fem: building or loading {SOURCE.name} failed, PyTorch is used: {detail[:500]}",
            stacklevel=2,
        )
        return None
    _signatures(lib)
    return lib


def usable(*tensors: torch.Tensor) -> bool:
    """Whether the fused product can serve these tensors: CPU, float32/float64, no autograd, library built."""
    t = tensors[0]
    if t.device.type != "cpu" or t.dtype not in (torch.float32, torch.float64):
        return False
    if torch.is_grad_enabled() and any(x.requires_grad for x in tensors):
        return False
    return library() is not None


def _suffix(dtype: torch.dtype) -> str:
    return "f32" if dtype == torch.float32 else "f64"


# the kernels' epilogues (what y receives after the product K u), see voxel_kernels.cpp
PRODUCT, MASKED, RESIDUAL, JACOBI = range(4)


def product(
    kind: str,
    u: torch.Tensor,
    el_shape: tuple[int, ...],
    periodic: bool,
    matrices: tuple[torch.Tensor, ...],
    mode: int = PRODUCT,
    r: torch.Tensor | None = None,
    w: torch.Tensor | None = None,
) -> torch.Tensor:
    """Epilogue `mode` of K u for a nodal field u (B, R, d, *nodes), the kernels' one entry point.

    kind "isotropic": matrices (coef (B, 2, n_el), kref (2, n_loc, n_loc), h (d,)), k_e = coef[b, 0, e] K_lam
    + coef[b, 1, e] K_mu with kref the stacked (K_lam, K_mu) of voxels of sides h (the 3D kernel evaluates
    them from h); kind "packed": matrices (kp,) from ``pack_upper``.
    mode: PRODUCT (K u), MASKED (w K u, w a free-node mask (1, 1, 1, *nodes)), RESIDUAL (r - K u, times the
    mask w if given), JACOBI (u + w (r - K u), w (B, 1, d, *nodes)); r like u."""
    u = u.contiguous()
    y = torch.empty_like(u)
    matrices = tuple(m.to(u.dtype).contiguous() for m in matrices)
    if matrices[0].shape[0] != u.shape[0]:
        raise ValueError(
            f"{kind} product: matrices for {matrices[0].shape[0]} samples, field of {u.shape[0]}"
        )
    r = None if r is None else r.to(u.dtype).expand_as(u).contiguous()
    w = None if w is None else w.to(u.dtype).contiguous()
    expected = (u.shape[0], 1, *u.shape[2:]) if mode == JACOBI else (1, 1, 1, *u.shape[3:])
    if w is not None and tuple(w.shape) != expected:
        raise ValueError(f"epilogue {mode}: weight of shape {tuple(w.shape)}, expected {expected}")
    el = (ctypes.c_int64 * len(el_shape))(*el_shape)
    fn = getattr(library(), f"matdiff_{kind}_{_suffix(u.dtype)}")
    fn(
        u.data_ptr(), y.data_ptr(), u.shape[0], u.shape[1], len(el_shape), el, int(periodic), mode,
        None if r is None else r.data_ptr(), None if w is None else w.data_ptr(), torch.get_num_threads(),
        *(m.data_ptr() for m in matrices),
    )  # fmt: skip
    return y


def fine_nodes(coarse_nodes: tuple[int, ...], periodic: bool) -> tuple[int, ...]:
    """Nodes per axis of the grid twice as fine as one with coarse_nodes (2n periodic, 2n - 1 closed)."""
    return tuple(2 * m if periodic else 2 * m - 1 for m in coarse_nodes)


def linear_prolong(xc: torch.Tensor, periodic: bool, add_to: torch.Tensor | None = None) -> torch.Tensor:
    """(Bi/tri)linear interpolation of a coarse nodal field (B, R, d, *nodes_c) onto the twice finer grid,
    plus the fine field add_to if given."""
    xc, nodes_c = xc.contiguous(), tuple(xc.shape[3:])
    y = xc.new_empty(*xc.shape[:3], *fine_nodes(nodes_c, periodic))
    base = None if add_to is None else add_to.to(xc.dtype).expand_as(y).contiguous()
    fn = getattr(library(), f"matdiff_prolong_{_suffix(xc.dtype)}")
    base_ptr, nodes = None if base is None else base.data_ptr(), (ctypes.c_int64 * len(nodes_c))(*nodes_c)
    fields, threads = xc.shape[:3].numel(), torch.get_num_threads()
    fn(xc.data_ptr(), y.data_ptr(), base_ptr, fields, len(nodes_c), nodes, int(periodic), threads)
    return y


def linear_restrict(xf: torch.Tensor, periodic: bool) -> torch.Tensor:
    """Transpose of ``linear_prolong``: a fine nodal field (B, R, d, *nodes_f) onto the coarse grid."""
    xf = xf.contiguous()
    nodes_c = tuple(m // 2 if periodic else (m + 1) // 2 for m in xf.shape[3:])
    y = xf.new_empty(*xf.shape[:3], *nodes_c)
    fn = getattr(library(), f"matdiff_restrict_{_suffix(xf.dtype)}")
    nodes, fields, threads = (
        (ctypes.c_int64 * len(nodes_c))(*nodes_c),
        xf.shape[:3].numel(),
        torch.get_num_threads(),
    )
    fn(xf.data_ptr(), y.data_ptr(), fields, len(nodes_c), nodes, int(periodic), threads)
    return y


def dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Per-field dot products of fields (B, R, ...) in float64, (B, R)."""
    u, v = u.contiguous(), v.contiguous()
    out = torch.empty(u.shape[:2], dtype=torch.float64)
    fields, size = u.shape[0] * u.shape[1], u[0, 0].numel()
    fn = getattr(library(), f"matdiff_dot_{_suffix(u.dtype)}")
    fn(u.data_ptr(), v.data_ptr(), out.data_ptr(), fields, size, torch.get_num_threads())
    return out


def cg_update(x: torch.Tensor, r: torch.Tensor, p: torch.Tensor, q: torch.Tensor, alpha: torch.Tensor):
    """In place x += alpha p, r -= alpha q for contiguous fields (B, R, ...) and alpha (B, R) (float64);
    returns ||r||^2 (B, R) in float64."""
    if not (x.is_contiguous() and r.is_contiguous()):
        raise ValueError("cg_update updates x and r in place: both must be contiguous")
    alpha = alpha.to(torch.float64).contiguous()
    rr = torch.empty(x.shape[:2], dtype=torch.float64)
    p, q = p.contiguous(), q.contiguous()
    fields, size = x.shape[0] * x.shape[1], x[0, 0].numel()
    fn = getattr(library(), f"matdiff_cg_update_{_suffix(x.dtype)}")
    fn(x.data_ptr(), r.data_ptr(), p.data_ptr(), q.data_ptr(), alpha.data_ptr(), rr.data_ptr(), fields, size,
       torch.get_num_threads())  # fmt: skip
    return rr


def pack_upper(ke: torch.Tensor, el_shape: tuple[int, ...]) -> torch.Tensor:
    """Upper triangles (i <= j, row by row) of symmetric element matrices ke (B, n_el, n_loc, n_loc), laid
    out for the kernels: (B, rows, vectors per row, n_loc (n_loc + 1) / 2, lanes), a vector being 64 bytes
    of elements along x, rows zero-padded to whole vectors."""
    ke = ke.contiguous()
    b, n_loc = ke.shape[0], ke.shape[-1]
    lanes = 64 // ke.element_size()
    vectors = -(-el_shape[-1] // lanes)
    kp = ke.new_empty(b, ke.shape[1] // el_shape[-1], vectors, n_loc * (n_loc + 1) // 2, lanes)
    el = (ctypes.c_int64 * len(el_shape))(*el_shape)
    fn = getattr(library(), f"matdiff_pack_{_suffix(ke.dtype)}")
    fn(ke.data_ptr(), kp.data_ptr(), b, len(el_shape), el, torch.get_num_threads())
    return kp
