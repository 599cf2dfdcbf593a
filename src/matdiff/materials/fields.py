"""Element properties of a design field: the one mapping from what a generator draws to what the FEM reads.

- Particle fields (seed A): normalized (B, 3, *spatial) channels (E, nu, rho) in [-1, 1], mapped through the
  catalogue's per-channel [min, max] (``catalogue_properties``).
- Two-phase density fields (seed B): x_tilde (B, *spatial) in [0, 1], each property interpolated linearly
  between a void and a solid value (``interpolated_properties``, seed B eq. 23).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from matdiff.materials.catalogue import Catalogue


@dataclass(frozen=True)
class Properties:
    """Physical element properties, each (B, *spatial): E in GPa, nu, rho in g/cm^3."""

    E: torch.Tensor
    nu: torch.Tensor
    rho: torch.Tensor


def catalogue_properties(field: torch.Tensor, catalogue: Catalogue) -> Properties:
    """Properties of normalized particle fields (B, 3, *spatial) (channels E, nu, rho); differentiable."""
    if field.ndim < 3 or field.shape[1] != 3:
        raise ValueError(f"particle fields must be (B, 3, *spatial) (E, nu, rho), got {tuple(field.shape)}")
    props = catalogue.denormalize(field.movedim(1, -1))
    return Properties(props[..., 0], props[..., 1], props[..., 2])


def interpolated_properties(
    density: torch.Tensor,
    E: tuple[float, float],
    nu: float | tuple[float, float],
    rho: tuple[float, float] = (0.0, 1.0),
    flip_rows: bool = False,
) -> Properties:
    """Properties of densities x_tilde (B, *spatial) in [0, 1]: theta0 + (theta1 - theta0) x_tilde per
    property (seed B eq. 23), from (void, solid) pairs; a single nu is used for both phases.

    ``flip_rows`` reverses axis -2 first: images store row 0 at the top, the FEM's rows follow +y.
    """
    nu = (nu, nu) if isinstance(nu, float | int) else nu
    density = density.flip(-2) if flip_rows else density

    def between(pair: tuple[float, float]) -> torch.Tensor:
        return pair[0] + (pair[1] - pair[0]) * density

    return Properties(between(E), between(nu), between(rho))
