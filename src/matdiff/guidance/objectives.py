"""Design objectives: differentiable per-sample losses of FEM outputs and of the property field.

An objective is any callable ``objective(q) -> Tensor (B,)`` where ``q`` is a :class:`Quantities` mapping.
``q`` computes FEM outputs lazily on first access, so an objective pays only for what it reads:

- ``q["E"], q["nu"], q["rho"]``: physical element properties, (B, *spatial), GPa / 1 / g cm^-3
- ``q["field"]``: the normalized field the properties came from, (B, 3, *spatial)
- ``q["bulk_modulus"]``: (B,) GPa, affine hydrostatic boundary conditions (SPEC 3)
- ``q["homogenized_stiffness"]``: (B, 3, 3) or (B, 6, 6) GPa, periodic boundary conditions
- ``q["density"]``: (B,) mean density in g cm^-3

Built-in objectives follow seed A: ``L1 = (K - K*)^2`` and ``L2 = L1 + lambda * mean density``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from matdiff import fem

Objective = Callable[["Quantities"], torch.Tensor]

FEM_QUANTITIES: dict[str, Callable[..., torch.Tensor]] = {
    "bulk_modulus": fem.bulk_modulus,
    "homogenized_stiffness": fem.homogenized_stiffness,
}


GUIDANCE_RTOL_FLOAT32 = 1e-5
"""PCG tolerance of guidance solves in float32 (**chosen**): the FEM default 1e-6 sits at float32's floor for
the catalogue's ~3e5 stiffness contrast (a stalled adjoint was seen at 2.1e-6); energy outputs err
quadratically in the residual, and a guidance gradient needs no more digits. float64 keeps the default."""


class Quantities(Mapping):
    """Lazily computed, cached FEM outputs and fields of one batch of property fields."""

    def __init__(self, field: torch.Tensor, props: torch.Tensor, warm_start: fem.WarmStart | None = None):
        """field: normalized (B, 3, *spatial); props: physical (B, *spatial, 3) in (E, nu, rho) order.

        ``warm_start`` (kept by the caller across diffusion steps) seeds every FEM solve with the last one.
        """
        self._values: dict[str, torch.Tensor] = {
            "field": field,
            "E": props[..., 0],
            "nu": props[..., 1],
            "rho": props[..., 2],
        }
        self._values["density"] = self._values["rho"].flatten(1).mean(1)
        self._warm_start = warm_start

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self._values:
            if key not in FEM_QUANTITIES:
                raise KeyError(f"unknown quantity {key!r}; available: {sorted(self.keys())}")
            E, nu = self._values["E"], self._values["nu"]
            rtol = GUIDANCE_RTOL_FLOAT32 if E.dtype == torch.float32 else None
            self._values[key] = FEM_QUANTITIES[key](E, nu, warm_start=self._warm_start, rtol=rtol)
        return self._values[key]

    def __iter__(self):
        return iter(sorted(set(self._values) | set(FEM_QUANTITIES)))

    def __len__(self) -> int:
        return len(set(self._values) | set(FEM_QUANTITIES))

    def computed(self) -> dict[str, torch.Tensor]:
        """The quantities evaluated so far (detached), e.g. for logging."""
        return {k: v.detach() for k, v in self._values.items() if k not in ("field", "E", "nu", "rho")}


def check_target(value: float, name: str = "target") -> float:
    """Return ``value`` as float if it is a finite positive number, else raise ValueError naming it."""
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite positive number, got {value}")
    return value


def target_bulk_modulus(target: float) -> Objective:
    """Seed A's L1: squared error (K - K*)^2 of the bulk modulus in GPa^2, per sample."""
    target = check_target(target, "target bulk modulus")

    def loss(q: Quantities) -> torch.Tensor:
        return (q["bulk_modulus"] - target) ** 2

    loss.__name__ = f"bulk_modulus={target:g}"
    return loss


def target_bulk_modulus_low_density(target: float, density_weight: float) -> Objective:
    """Seed A's L2: (K - K*)^2 + density_weight * mean density (g cm^-3)."""
    bulk = target_bulk_modulus(target)
    if not math.isfinite(density_weight) or density_weight < 0:
        raise ValueError(f"density weight must be finite and >= 0, got {density_weight}")

    def loss(q: Quantities) -> torch.Tensor:
        return bulk(q) + density_weight * q["density"]

    loss.__name__ = f"{bulk.__name__}+{density_weight:g}*density"
    return loss


BUILTIN = {"bulk": target_bulk_modulus, "bulk+density": target_bulk_modulus_low_density}


def make_objective(name: str, **kwargs: float) -> Objective:
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
