"""What every design method returns, and the protocol a method follows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from matdiff.guidance import TargetObjective
from matdiff.materials import Properties, interpolated_properties
from matdiff.microstructure import ParticleDesign


@dataclass(frozen=True)
class ImageDesign:
    """A two-phase density image (seed B): x_tilde (H, W) in [0, 1], row 0 the top edge, and its material
    interpolation (E void/solid in GPa, nu). ``properties`` gives the FEM's (1, H, W) fields, rows flipped to
    the FEM's +y order when ``flip_rows`` (as seed B's code flips its image before meshing)."""

    density: np.ndarray
    E: tuple[float, float] = (1.0, 100.0)
    nu: float = 0.3
    flip_rows: bool = True

    def properties(self, dtype: torch.dtype = torch.float64) -> Properties:
        """(1, H, W) element properties of the design."""
        density = torch.as_tensor(np.asarray(self.density), dtype=dtype)[None]
        return interpolated_properties(density, self.E, self.nu, flip_rows=self.flip_rows)


Design = ParticleDesign | ImageDesign


@dataclass
class Proposals:
    """n proposed designs of one method call.

    designs: one per sample, None where the method could not produce one (``reasons`` says why);
    fields: what the generator drew, (n, C, *spatial) normalized fields or (n, 1, H, W) images, for pictures
    and the "generated" stage of the evaluation (None if the method draws none); columns: per-design numbers
    of the method (e.g. material-fitting variance), each a list of n floats; trace: JSON-able records of the
    run (per-step losses, stages); seconds: time by part; arrays: further per-run arrays (saved as .npz).
    """

    designs: list[Design | None]
    reasons: list[str]
    fields: np.ndarray | None = None
    columns: dict[str, list[float]] = field(default_factory=dict)
    trace: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


class DesignMethod(Protocol):
    """A design method: ``propose`` n designs for ``objective`` from ``seed``; ``settings`` (JSON-able) is
    saved with every result; ``name`` labels tables."""

    name: str

    def settings(self) -> dict[str, Any]: ...

    def propose(self, objective: TargetObjective, n: int, seed: int) -> Proposals: ...
