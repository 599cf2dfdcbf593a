"""The `matdiff` command: one typer app; each command lives in its own module with `register(app)`."""

import typer

from matdiff.cli import dataset, design, materials, optimize_noise, quality, sample, styles, train

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
for module in (dataset, design, materials, optimize_noise, quality, sample, styles, train):
    module.register(app)


def main() -> None:
    """Entry point of the `matdiff` console script."""
    app()
