"""The `matdiff` command: one typer app; each command lives in its own module with `register(app)`."""

import typer

from matdiff.cli import dataset, materials

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
for module in (dataset, materials):
    module.register(app)


def main() -> None:
    """Entry point of the `matdiff` console script."""
    app()
