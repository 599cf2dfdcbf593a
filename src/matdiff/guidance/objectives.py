"""Design objectives: differentiable per-sample losses of FEM outputs and of the property field.

An objective is any callable ``objective(q) -> Tensor (B,)`` where ``q`` is a :class:`Quantities`; ``q``
computes FEM outputs lazily on first access, so an objective pays only for what it reads:

- ``q["E"], q["nu"], q["rho"]``: physical element properties, (B, *spatial), GPa / 1 / g cm^-3
- ``q["field"]``: the field the properties came from (normalized (B, 3, *spatial), or densities), if given
- ``q["bulk_modulus"]``: (B,) GPa, affine hydrostatic boundary conditions (SPEC 3)
- ``q["homogenized_stiffness"]``: (B, 3, 3) or (B, 6, 6) GPa, periodic boundary conditions
- ``q["density"]``: (B,) mean density in g cm^-3

``TargetObjective`` names its quantity and target once: seed A's ``L1 = (K - K*)^2`` and ``L2 = L1 + lambda *
mean density``, and seed B's ``sum_ij (C_ij - C*_ij)^2``; design campaigns read the target from it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from matdiff import fem
from matdiff.materials import Properties

Objective = Callable[["Quantities"], torch.Tensor]

FEM_QUANTITIES: dict[str, Callable[..., tuple[torch.Tensor, fem.SolveStatus]]] = {
    "bulk_modulus": fem.bulk_modulus,
    "homogenized_stiffness": fem.homogenized_stiffness,
}
"""FEM outputs by name: fn(E, nu, plane=, warm_start=, options=, return_status=True) -> (value (B, ...),
``fem.SolveStatus``), as ``fem.bulk_modulus``."""


GUIDANCE_RTOL_FLOAT32 = 1e-5
"""PCG tolerance of guidance solves in float32 (**chosen**): the FEM default 1e-6 sits at float32's floor for
the catalogue's ~3e5 stiffness contrast (a stalled adjoint was seen at 2.1e-6); energy outputs err
quadratically in the residual, and a guidance gradient needs no more digits. float64 keeps the default."""


class Quantities:
    """Lazily computed, cached FEM outputs and fields of one batch of element properties.

    ``q[key]`` computes a FEM quantity on first access; ``available()`` names what can be asked for and
    ``computed()`` what has been evaluated (neither runs a solve). A sample whose solve misses its tolerance
    is solved again cold in float64 (``fem.SolveOptions(on_failure="retry")``); where that fails too its
    value is NaN and ``failures()`` says why.
    """

    def __init__(
        self,
        props: Properties,
        field: torch.Tensor | None = None,
        warm_start: fem.WarmStart | None = None,
        plane: str = "stress",
    ):
        """props: physical properties (B, *spatial) each; field: what they came from (kept as q["field"]).

        ``warm_start`` (kept by the caller across diffusion steps) seeds every FEM solve with the last one;
        ``plane``: 2D "stress" (default) or "strain".
        """
        self._values: dict[str, torch.Tensor] = {
            "E": props.E,
            "nu": props.nu,
            "rho": props.rho,
            "density": props.rho.flatten(1).mean(1),
        }
        if field is not None:
            self._values["field"] = field
        self._warm_start = warm_start
        self._plane = plane
        self._status: dict[str, fem.SolveStatus] = {}

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self._values:
            if key not in FEM_QUANTITIES:
                raise KeyError(f"unknown quantity {key!r}; available: {self.available()}")
            E, nu = self._values["E"], self._values["nu"]
            rtol = GUIDANCE_RTOL_FLOAT32 if E.dtype == torch.float32 else None
            options = fem.SolveOptions(rtol=rtol, on_failure="retry")
            self._values[key], self._status[key] = FEM_QUANTITIES[key](
                E, nu, plane=self._plane, warm_start=self._warm_start, options=options, return_status=True
            )
        return self._values[key]

    def failures(self) -> dict[int, str]:
        """Samples whose FEM quantities are NaN (solve failed after the float64 retry): index -> why."""
        found: dict[int, str] = {}
        for status in self._status.values():
            for i, reason in enumerate(status.reasons()):
                if reason:
                    found.setdefault(i, reason)
        return found

    def available(self) -> list[str]:
        """Names an objective may read (fields and FEM quantities)."""
        return sorted(set(self._values) | set(FEM_QUANTITIES))

    def computed(self) -> dict[str, torch.Tensor]:
        """The FEM outputs and derived quantities evaluated so far (detached), e.g. for logging."""
        return {k: v.detach() for k, v in self._values.items() if k not in ("field", "E", "nu", "rho")}


@dataclass(frozen=True)
class TargetObjective:
    """Squared distance of one quantity to its target, plus an optional density penalty, per sample (B,).

    ``quantity``: a FEM quantity of ``Quantities`` ("bulk_modulus" GPa, "homogenized_stiffness" (d, d) GPa);
    ``target``: a number or nested list shaped like one sample's quantity; loss = sum over the quantity's
    entries of (value - target)^2 + density_weight * mean density (g/cm^3).
    """

    quantity: str
    target: Any
    density_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.quantity not in FEM_QUANTITIES:
            raise ValueError(f"unknown quantity {self.quantity!r}; choose one of {sorted(FEM_QUANTITIES)}")
        if not math.isfinite(self.density_weight) or self.density_weight < 0:
            raise ValueError(f"density weight must be finite and >= 0, got {self.density_weight}")

    @property
    def name(self) -> str:
        """A short label, e.g. "bulk_modulus=100" or "bulk_modulus=100+0.5*density"."""
        target = self.target if np.ndim(self.target) == 0 else "C*"
        suffix = f"+{self.density_weight:g}*density" if self.density_weight else ""
        return f"{self.quantity}={target}{suffix}"

    def target_tensor(self, like: torch.Tensor) -> torch.Tensor:
        """The target as a tensor with like's dtype and device."""
        return torch.as_tensor(np.asarray(self.target, dtype=np.float64)).to(like)

    def __call__(self, q: Quantities) -> torch.Tensor:
        value = q[self.quantity]
        loss = ((value - self.target_tensor(value)) ** 2).reshape(value.shape[0], -1).sum(1)
        return loss + self.density_weight * q["density"] if self.density_weight else loss

    def relative_error(self, value: np.ndarray) -> np.ndarray:
        """Relative error (N,) of values (N, *quantity shape): |v - t| / |t| (Frobenius norms for tensors)."""
        value = np.asarray(value, dtype=np.float64)
        target = np.asarray(self.target, dtype=np.float64)
        diff = (value - target).reshape(len(value), -1)
        return np.linalg.norm(diff, axis=1) / np.linalg.norm(target.reshape(-1))


def check_target(value: float, name: str = "target") -> float:
    """Return ``value`` as float if it is a finite positive number, else raise ValueError naming it."""
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite positive number, got {value}")
    return value


def target_bulk_modulus(target: float, density_weight: float = 0.0) -> TargetObjective:
    """Seed A's L1, (K - K*)^2 in GPa^2 per sample, or with density_weight > 0 its L2 (+ lambda mean rho)."""
    return TargetObjective("bulk_modulus", check_target(target, "target bulk modulus"), density_weight)


def target_bulk_modulus_low_density(target: float, density_weight: float) -> TargetObjective:
    """Seed A's L2: (K - K*)^2 + density_weight * mean density (g cm^-3)."""
    return target_bulk_modulus(target, density_weight)


BUILTIN = {"bulk": target_bulk_modulus, "bulk+density": target_bulk_modulus_low_density}


def make_objective(name: str, **kwargs: float) -> TargetObjective:
    """Build a built-in objective by name (``bulk`` or ``bulk+density``)."""
    if name not in BUILTIN:
        raise ValueError(f"unknown objective {name!r}; built in: {sorted(BUILTIN)}")
    return BUILTIN[name](**kwargs)


def require_particle_model(model: Any) -> None:
    """Raise ValueError unless ``model`` generates 3-channel (E, nu, rho) fields of a matdiff catalogue.

    The hash itself is checked by ``matdiff.diffusion.load_model(..., catalogue=...)``.
    """
    if model.config.get("catalogue_hash") is None or model.channels != 3:
        raise ValueError(
            f"this model ({model.channels} channel(s), no catalogue hash) was not trained on (E, nu, rho) "
            "particle fields of a matdiff catalogue; guided bulk-modulus design needs such a model"
        )
