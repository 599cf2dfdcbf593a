"""What noise-space design optimizes: objectives of one or several density fields (seed B sec. 3.2-3.4).

An objective (``NoiseObjective``) names the density fields it designs (``fields``), maps their projected
densities (B, F, H, W) in [0, 1] to a physical quantity (B, ...) and that quantity to one loss per design
(B,). Fields it needs but does not design are fixed densities (H, W) given when it is built (``fixed``), e.g.
the sigma0 field of a generated digit pair while the E field is designed. ``describe()`` is its JSON record.

- ``StiffnessObjective`` (sec. 3.2): one periodic cell, E = 1 + 99 x, plane stress, C_hom (B, 3, 3) GPa,
  loss sum_ij (C_ij - C*_ij)^2.
- ``EnergyCurveObjective`` (sec. 3.3): E = 1 + 99 x, nu = 0.3, Neo-Hookean strain energy at the top
  displacements 0.05 ... 0.5 (``fem.strain_energy_curve``, (B, 10)), loss mean_i (P_i - P*_i)^2.
- ``StressCurveObjective`` (sec. 3.4): fields E and sigma0, E = 1e3 + (1e5 - 1e3) x_E MPa, sigma0 = 30 + 270
  x_s MPa, nu = 0.3, J2 area-averaged sigma_yy at 0.0005 ... 0.01 (``fem.stress_displacement_curve``,
  (B, 20)), loss mean_i (s_i - s*_i)^2.

The curve objectives use the FEM's image orientation (row 0 = the top, loaded edge), so their densities are
not flipped; the stiffness objective flips rows as seed B's code does (``flip_rows``). FEM inputs are float64.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch

from matdiff import fem
from matdiff.materials import interpolated_properties

# ----------------------------------------------------------------------------------------- seed B's targets

SEED_B_TARGETS: dict[str, dict[str, list[list[float]]]] = {
    "digits": {
        "biclinic": [[50, 12, 0], [12, 60, -3], [0, -3, 15]],
        "orthotropic": [[50, 12, 0], [12, 60, 0], [0, 0, 15]],
        "tetragonal": [[60, 12, 0], [12, 60, 0], [0, 0, 15]],
    },
    "metamaterial": {
        "orthotropic": [[50, 15, 0], [15, 70, 0], [0, 0, 15]],
        "tetragonal": [[50, 15, 0], [15, 50, 0], [0, 0, 15]],
    },
}
"""Seed B's target C_hom (GPa, Voigt, engineering shear) per style (sec. 3.2)."""

ENERGY_DISPLACEMENTS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 11))
"""Top-edge displacements d of seed B's hyperelastic example (sec. 3.3): 0.05, 0.10, ..., 0.50."""
ENERGY_P1: tuple[float, float, float] = (-19.880, 51.245, 0.472)
ENERGY_P0: tuple[float, float, float] = (-0.199, 0.512, 0.005)
"""Seed B eq. 34: the target strain energy P*(d) = (1 - alpha) P1(d) + alpha P0(d), with the cubics
P(d) = c3 d^3 + c2 d^2 + c1 d given here as (c3, c2, c1) (P1 from a solid, P0 from a void square)."""

STRESS_DISPLACEMENTS: tuple[float, ...] = tuple(round(0.0005 * i, 4) for i in range(1, 21))
"""Top-edge displacements (mm) of seed B's elasto-plastic example (sec. 3.4): 0.0005 i, i = 1..20."""


@dataclass(frozen=True)
class HardeningCurve:
    """Seed B eq. 39: sigma(x) = E x for x <= eps_y, else sigma_0 + sum_i A_i (1 - exp(-kappa_i (x - eps_y)))
    with sigma_0 = E eps_y (MPa); sigma_inf = sigma_0 + sum_i A_i is the stress it saturates at."""

    E: float
    eps_y: float
    sigma_inf: float
    A: tuple[float, ...]
    kappa: tuple[float, ...]

    def __call__(self, strain: torch.Tensor) -> torch.Tensor:
        """Stress (MPa), same shape as ``strain``."""
        hardening = sum(
            a * (1.0 - torch.exp(-k * (strain - self.eps_y))) for a, k in zip(self.A, self.kappa, strict=True)
        )
        return torch.where(strain <= self.eps_y, self.E * strain, self.E * self.eps_y + hardening)


STRESS_GROUPS: dict[int, HardeningCurve] = {
    1: HardeningCurve(4.8e4, 2.7e-3, 220.0, (4.0, 1.0, 85.4), (1000.0, 88.0, 88.0)),
    2: HardeningCurve(6.8e4, 2.8e-3, 250.0, (12.0, 1.0, 46.6), (1000.0, 87.0, 87.0)),
    3: HardeningCurve(8.2e4, 2.8e-3, 280.0, (18.0, 1.0, 31.4), (1000.0, 63.0, 63.0)),
}
"""Seed B Table 1: the three parametric target groups of eq. 39 (Fig. 15)."""


def energy_target(alpha: float, displacements: Sequence[float] = ENERGY_DISPLACEMENTS) -> torch.Tensor:
    """Seed B eq. 34's target strain energies P*(d) (n,) float64 at the displacements d."""
    d = torch.tensor(displacements, dtype=torch.float64)

    def cubic(c: tuple[float, float, float]) -> torch.Tensor:
        return c[0] * d**3 + c[1] * d**2 + c[2] * d

    return (1.0 - alpha) * cubic(ENERGY_P1) + alpha * cubic(ENERGY_P0)


def stress_target(group: int, displacements: Sequence[float] = STRESS_DISPLACEMENTS) -> torch.Tensor:
    """Seed B eq. 39's target stresses (n,) float64 MPa of Table 1's group at the displacements (strain = d
    on the unit square); ValueError for an unknown group."""
    if group not in STRESS_GROUPS:
        raise ValueError(f"unknown target group {group}; seed B's Table 1 has groups {sorted(STRESS_GROUPS)}")
    return STRESS_GROUPS[group](torch.tensor(displacements, dtype=torch.float64))


def validate_target(C: Any, rtol: float = 1e-6) -> torch.Tensor:
    """A target stiffness as a (3, 3) float64 tensor; ValueError unless it is 3x3, finite and symmetric."""
    try:
        t = torch.as_tensor(np.asarray(C, dtype=np.float64))
    except (TypeError, ValueError) as err:
        raise ValueError(f"target C must be a 3x3 array of numbers: {err}") from err
    if t.shape != (3, 3):
        raise ValueError(f"target C must be 3x3 (2D Voigt), got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError("target C has NaN or infinite entries")
    scale = float(t.abs().max()) or 1.0
    if (t - t.T).abs().max() > rtol * scale:
        raise ValueError(f"target C must be symmetric, got\n{t.numpy()}")
    return t


def parse_target(text: str) -> torch.Tensor:
    """Parse "c11,c12,c13;c21,c22,c23;c31,c32,c33" into a validated (3, 3) float64 tensor."""
    try:
        rows = [[float(v) for v in row.split(",")] for row in text.strip().split(";")]
    except ValueError as err:
        raise ValueError(f"target C {text!r} is not 3 rows of comma-separated numbers") from err
    if len(rows) != 3 or any(len(r) != 3 for r in rows):
        raise ValueError(f"target C {text!r} must have 3 rows of 3 numbers separated by ';'")
    return validate_target(rows)


# --------------------------------------------------------------------------------------------- the interface


@dataclass
class Response:
    """What the physics says of B designs: quantity (B, ...); nodal displacement (B, 2, H+1, W+1) (u_x, u_y)
    at the last load step, row 0 = the top nodes (None without load steps); failure reason per design ("" if
    solved)."""

    quantity: torch.Tensor
    displacement: torch.Tensor | None
    reasons: list[str]


@runtime_checkable
class NoiseObjective(Protocol):
    """An objective of noise-space design (see the module docstring).

    ``fields``: names of the designed fields, in the order of the noise channels; ``fixed``: the densities
    (H, W) of the fields it needs but does not design; ``quantity_name``: short name of its quantity ("C",
    "energy", "stress"), used for result keys.
    """

    name: str
    fields: tuple[str, ...]
    quantity_name: str

    @property
    def fixed(self) -> Mapping[str, torch.Tensor]: ...

    def quantity(self, densities: torch.Tensor) -> torch.Tensor:
        """Quantity (B, ...) of designed densities (B, F, H, W) in [0, 1], differentiable."""
        ...

    def response(self, densities: torch.Tensor) -> Response:
        """Quantity, last displacement and failures of densities (B, F, H, W), for records."""
        ...

    def loss(self, quantity: torch.Tensor) -> torch.Tensor:
        """Loss per design (B,) of a quantity (B, ...)."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-able record: name, fields, fixed field names, quantity, target, settings."""
        ...


def unsolved(values: torch.Tensor) -> list[str]:
    """Per design: "" where every entry of values (B, ...) is finite, else a one-line reason."""
    finite = torch.isfinite(values.detach()).flatten(1).all(dim=1)
    return ["" if ok else "the FEM returned a non-finite value" for ok in finite.tolist()]


# ---------------------------------------------------------------------------------------------- stiffness

StiffnessFn = Callable[..., torch.Tensor]
"""fn(E (B, H, W), nu (B, H, W), plane=...) -> C_hom (B, 3, 3), as ``fem.homogenized_stiffness``."""


def stiffness_loss(C: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Seed B's loss per design (B,): sum_ij (C_ij - C*_ij)^2 for C (B, 3, 3) and target (3, 3)."""
    return ((C - target.to(C)) ** 2).flatten(1).sum(dim=1)


@dataclass(frozen=True)
class StiffnessObjective:
    """Seed B's homogenization objective (sec. 3.2): C_hom (B, 3, 3) GPa of the periodic cell with
    E = E_range[0] + (E_range[1] - E_range[0]) x and nu in both phases, rows flipped to the FEM's +y order
    (``flip_rows``); loss sum_ij (C_ij - C*_ij)^2. ``stiffness_fn`` replaces the FEM (tests)."""

    target: torch.Tensor
    E_range: tuple[float, float] = (1.0, 100.0)
    nu: float = 0.3
    plane: str = "stress"
    flip_rows: bool = True
    stiffness_fn: StiffnessFn | None = None

    name: ClassVar[str] = "stiffness"
    fields: ClassVar[tuple[str, ...]] = ("density",)
    quantity_name: ClassVar[str] = "C"

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", validate_target(self.target))

    @property
    def fixed(self) -> Mapping[str, torch.Tensor]:
        """No fixed fields."""
        return {}

    def quantity(self, densities: torch.Tensor) -> torch.Tensor:
        """C_hom (B, 3, 3) GPa of densities (B, 1, H, W)."""
        props = interpolated_properties(
            densities[:, 0].to(torch.float64), self.E_range, self.nu, flip_rows=self.flip_rows
        )
        return (self.stiffness_fn or fem.homogenized_stiffness)(props.E, props.nu, plane=self.plane)

    def response(self, densities: torch.Tensor) -> Response:
        """C_hom of densities (B, 1, H, W); no load steps, so no displacement."""
        C = self.quantity(densities)
        return Response(C, None, unsolved(C))

    def loss(self, quantity: torch.Tensor) -> torch.Tensor:
        """sum_ij (C_ij - C*_ij)^2 per design (B,)."""
        return stiffness_loss(quantity, self.target)

    def describe(self) -> dict[str, Any]:
        """JSON-able record of the objective."""
        return {
            "name": self.name,
            "fields": list(self.fields),
            "fixed": [],
            "quantity": self.quantity_name,
            "target": self.target.tolist(),
            "loss": "sum_ij (C_ij - C*_ij)^2",
            "periodic": True,
            "settings": {
                "E_range": list(self.E_range),
                "nu": self.nu,
                "plane": self.plane,
                "flip_rows": self.flip_rows,
            },
        }


# ----------------------------------------------------------------------------------------- load curves

CurveFn = Callable[..., Any]
"""A FEM load curve, as ``fem.strain_energy_curve`` / ``fem.stress_displacement_curve``: fields (B, H, W),
displacements -> values (B, n), or with ``return_result=True`` an object with ``.values``, ``.displacement``
(B, 2, H+1, W+1) and ``.status.reasons()``."""


@dataclass(frozen=True, kw_only=True)
class CurveObjective:
    """A load-displacement curve objective: quantity (B, n) at ``displacements``, loss mean_i (q_i - q*_i)^2.

    ``target`` (n,) at ``displacements`` (default: the subclass's ``default_displacements``); ``fields``: the
    designed fields (default all of ``field_names``), kept in the order of
    ``field_names``; ``fixed``: one density (H, W) in [0, 1] for every other field; ``source``: where the
    target comes from (JSON-able, recorded); ``curve_fn`` replaces the FEM function (tests). Subclasses give
    ``name``, ``field_names``, ``quantity_name``, ``settings()`` and ``solve()``.
    """

    target: torch.Tensor
    displacements: tuple[float, ...] = ()
    fields: tuple[str, ...] = ()
    fixed: Mapping[str, torch.Tensor] = field(default_factory=dict)
    nu: float = 0.3
    source: Mapping[str, Any] = field(default_factory=dict)
    curve_fn: CurveFn | None = None

    name: ClassVar[str]
    field_names: ClassVar[tuple[str, ...]]
    quantity_name: ClassVar[str]
    default_displacements: ClassVar[tuple[float, ...]]

    def __post_init__(self) -> None:
        displacements = tuple(float(d) for d in self.displacements or self.default_displacements)
        object.__setattr__(self, "displacements", displacements)
        fields = tuple(self.fields) or self.field_names
        unknown = [f for f in fields if f not in self.field_names]
        if unknown or len(set(fields)) != len(fields):
            raise ValueError(
                f"{self.name} designs fields among {list(self.field_names)}, each once; got {list(fields)}"
            )
        object.__setattr__(self, "fields", tuple(f for f in self.field_names if f in fields))
        object.__setattr__(self, "fixed", {k: _density(k, v) for k, v in self.fixed.items()})
        missing = [f for f in self.field_names if f not in self.fields and f not in self.fixed]
        extra = [f for f in self.fixed if f in self.fields or f not in self.field_names]
        if missing or extra:
            raise ValueError(
                f"{self.name}: give a fixed density for each field not designed ({missing} missing) and none "
                f"for designed or unknown fields ({extra})"
            )
        if len({tuple(v.shape) for v in self.fixed.values()}) > 1:
            raise ValueError(f"{self.name}: the fixed densities differ in shape")
        target = torch.as_tensor(self.target, dtype=torch.float64).detach()
        if target.shape != (len(self.displacements),) or not torch.isfinite(target).all():
            raise ValueError(
                f"{self.name}: the target must be {len(self.displacements)} finite numbers (one per "
                f"displacement), got shape {tuple(target.shape)}"
            )
        object.__setattr__(self, "target", target)

    @classmethod
    def matching(
        cls, densities: Mapping[str, torch.Tensor], fields: Sequence[str] = (), **kwargs: Any
    ) -> CurveObjective:
        """The objective whose target is the curve of ``densities`` (one (H, W) density per field name),
        designing ``fields`` (default all) with the others fixed to these densities (seed B Figs. 12-14)."""
        n = len(kwargs.get("displacements") or cls.default_displacements)
        probe = cls(target=torch.zeros(n), **kwargs)
        with torch.no_grad():
            target = probe.quantity(torch.stack([densities[f] for f in cls.field_names])[None])[0]
        fields = tuple(fields) or cls.field_names
        fixed = {f: densities[f] for f in cls.field_names if f not in fields}
        return cls(target=target, fields=fields, fixed=fixed, **kwargs)

    def all_densities(self, densities: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every field's float64 density (B, H, W): the designed ones from densities (B, F, H, W), the fixed
        ones repeated for each design."""
        if densities.ndim != 4 or densities.shape[1] != len(self.fields):
            raise ValueError(
                f"{self.name}: expected densities (B, {len(self.fields)}, H, W) of fields "
                f"{list(self.fields)}, got shape {tuple(densities.shape)}"
            )
        B, _, H, W = densities.shape
        out = {f: densities[:, i].to(torch.float64) for i, f in enumerate(self.fields)}
        for f, x in self.fixed.items():
            if tuple(x.shape) != (H, W):
                raise ValueError(f"{self.name}: fixed field {f} is {tuple(x.shape)}, the designs ({H}, {W})")
            out[f] = x.to(densities.device).expand(B, H, W)
        return out

    def solve(self, densities: Mapping[str, torch.Tensor], return_result: bool) -> Any:
        """The FEM curve of every field's density (B, H, W): values (B, n), or the FEM's result object."""
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """The material map (JSON-able)."""
        raise NotImplementedError

    def quantity(self, densities: torch.Tensor) -> torch.Tensor:
        """The curve (B, n) of designed densities (B, F, H, W), differentiable."""
        return self.solve(self.all_densities(densities), return_result=False)

    def response(self, densities: torch.Tensor) -> Response:
        """Curve, displacement at the last step and per-design failures of densities (B, F, H, W)."""
        result = self.solve(self.all_densities(densities), return_result=True)
        return Response(result.values, result.displacement, list(result.status.reasons()))

    def loss(self, quantity: torch.Tensor) -> torch.Tensor:
        """mean_i (q_i - q*_i)^2 per design (B,) of a curve (B, n)."""
        return ((quantity - self.target.to(quantity)) ** 2).mean(dim=1)

    def describe(self) -> dict[str, Any]:
        """JSON-able record of the objective."""
        return {
            "name": self.name,
            "fields": list(self.fields),
            "fixed": sorted(self.fixed),
            "quantity": self.quantity_name,
            "target": self.target.tolist(),
            "target_source": dict(self.source),
            "displacements": list(self.displacements),
            "loss": f"mean_i ({self.quantity_name}_i - {self.quantity_name}*_i)^2",
            "periodic": False,
            "settings": self.settings(),
        }


def _density(name: str, x: Any) -> torch.Tensor:
    """A fixed density as an (H, W) float64 tensor; ValueError unless 2D, finite and within [0, 1]."""
    t = torch.as_tensor(x, dtype=torch.float64).detach()
    if t.ndim != 2 or not torch.isfinite(t).all() or t.min() < 0 or t.max() > 1:
        raise ValueError(f"fixed density {name} must be an (H, W) array of numbers in [0, 1]")
    return t


@dataclass(frozen=True, kw_only=True)
class EnergyCurveObjective(CurveObjective):
    """Seed B sec. 3.3: the Neo-Hookean strain-energy curve (B, n) of E = E_range[0] + (E_range[1] -
    E_range[0]) x, nu (``fem.strain_energy_curve``; bottom clamped, top pulled by d)."""

    E_range: tuple[float, float] = (1.0, 100.0)

    name: ClassVar[str] = "energy-curve"
    field_names: ClassVar[tuple[str, ...]] = ("density",)
    quantity_name: ClassVar[str] = "energy"
    default_displacements: ClassVar[tuple[float, ...]] = ENERGY_DISPLACEMENTS

    @classmethod
    def seed_b(cls, alpha: float, **kwargs: Any) -> EnergyCurveObjective:
        """Seed B's target P* = (1 - alpha) P1 + alpha P0 (eq. 34) at the objective's displacements."""
        displacements = kwargs.pop("displacements", None) or cls.default_displacements
        target = energy_target(alpha, displacements)
        return cls(target=target, displacements=displacements, source={"alpha": alpha}, **kwargs)

    def solve(self, densities: Mapping[str, torch.Tensor], return_result: bool) -> Any:
        """``fem.strain_energy_curve`` of the density field."""
        props = interpolated_properties(densities["density"], self.E_range, self.nu)
        curve = self.curve_fn or fem.strain_energy_curve
        return curve(props.E, props.nu, self.displacements, return_result=return_result)

    def settings(self) -> dict[str, Any]:
        """The material map."""
        return {"E_range": list(self.E_range), "nu": self.nu}


@dataclass(frozen=True, kw_only=True)
class StressCurveObjective(CurveObjective):
    """Seed B sec. 3.4: the J2 area-averaged sigma_yy curve (B, n) MPa of E = E_range[0] + (E_range[1] -
    E_range[0]) x_E and sigma0 = sigma0_range[0] + (sigma0_range[1] - sigma0_range[0]) x_s, nu
    (``fem.stress_displacement_curve``)."""

    E_range: tuple[float, float] = (1e3, 1e5)
    sigma0_range: tuple[float, float] = (30.0, 300.0)

    name: ClassVar[str] = "stress-curve"
    field_names: ClassVar[tuple[str, ...]] = ("E", "sigma0")
    quantity_name: ClassVar[str] = "stress"
    default_displacements: ClassVar[tuple[float, ...]] = STRESS_DISPLACEMENTS

    @classmethod
    def seed_b(cls, group: int, **kwargs: Any) -> StressCurveObjective:
        """Seed B's parametric target of Table 1's ``group`` (eq. 39), both fields designed by default."""
        displacements = kwargs.pop("displacements", None) or cls.default_displacements
        target = stress_target(group, displacements)
        return cls(target=target, displacements=displacements, source={"group": group}, **kwargs)

    def solve(self, densities: Mapping[str, torch.Tensor], return_result: bool) -> Any:
        """``fem.stress_displacement_curve`` of the E and sigma0 density fields."""
        props = interpolated_properties(densities["E"], self.E_range, self.nu)
        low, high = self.sigma0_range
        sigma0 = low + (high - low) * densities["sigma0"]
        curve = self.curve_fn or fem.stress_displacement_curve
        return curve(props.E, props.nu, sigma0, self.displacements, return_result=return_result)

    def settings(self) -> dict[str, Any]:
        """The material map."""
        return {"E_range": list(self.E_range), "sigma0_range": list(self.sigma0_range), "nu": self.nu}


CURVE_OBJECTIVES: dict[str, type[CurveObjective]] = {
    cls.name: cls for cls in (EnergyCurveObjective, StressCurveObjective)
}
"""The curve objectives by name."""
