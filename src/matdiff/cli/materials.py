"""`matdiff materials`: counts of the material catalogue and a picture of it in the (E, nu, rho) box."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer
from rich.table import Table

from matdiff.cli.common import console, one_line, writable_file
from matdiff.materials import Catalogue, load_catalogue
from matdiff.materials.catalogue import BOX_HI, SEGMENTS

AXIS_LABELS = ("E (GPa)", "nu", "rho (g/cm^3)")
PAIRS = ((0, 1), (0, 2), (1, 2))


def register(app: typer.Typer) -> None:
    """Add the `materials` command to the app."""
    app.command("materials")(materials)


def source_family(source: str) -> str:
    """The source family of a catalogue `source` entry: the text before its first colon."""
    return source.split(":", 1)[0].strip()


def count_table(catalogue: Catalogue) -> Table:
    """A rich table of counts: materials, per class, per source family, non-empty chunks."""
    table = Table(title="Material catalogue", show_header=True)
    table.add_column("group")
    table.add_column("entry")
    table.add_column("count", justify="right")
    table.add_row("all", "materials", str(len(catalogue)))
    for cls, count in sorted(Counter(catalogue.classes).items()):
        table.add_row("class", cls, str(count))
    for family, count in Counter(map(source_family, catalogue.sources)).most_common():
        table.add_row("source", family, str(count))
    table.add_row("chunks", f"non-empty of {SEGMENTS**3}", str(len(catalogue.nonempty_chunks)))
    table.add_row("file", "sha256", catalogue.hash[:16])
    return table


def picture_file(path: Path | None) -> Path | None:
    """Callback of ``--plot``: a writable file whose suffix names a format matplotlib can write."""
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    if path is not None and path.suffix.lstrip(".").lower() not in formats:
        raise typer.BadParameter(
            f"cannot write a {path.suffix or 'suffix-less'} picture; use one of .{', .'.join(formats)}"
        )
    return writable_file(path)


def plot_catalogue(catalogue: Catalogue, path: Path) -> None:
    """Save pairwise scatter plots (E-nu, E-rho, nu-rho) coloured by class, with the chunk grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = sorted(set(catalogue.classes))
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8), constrained_layout=True)
    for ax, (i, j) in zip(axes, PAIRS, strict=True):
        for k, cls in enumerate(classes):
            rows = [n for n, c in enumerate(catalogue.classes) if c == cls]
            ax.scatter(catalogue.props[rows, i], catalogue.props[rows, j], s=12, color=colours(k), label=cls)
        for v in range(SEGMENTS + 1):
            ax.axvline(v * BOX_HI[i] / SEGMENTS, color="0.85", lw=0.6, zorder=0)
            ax.axhline(v * BOX_HI[j] / SEGMENTS, color="0.85", lw=0.6, zorder=0)
        ax.set(xlim=(0, BOX_HI[i]), ylim=(0, BOX_HI[j]), xlabel=AXIS_LABELS[i], ylabel=AXIS_LABELS[j])
    axes[2].legend(fontsize=8, loc="upper left")
    fig.suptitle(
        f"{len(catalogue)} materials, {len(catalogue.nonempty_chunks)} of {SEGMENTS**3} chunks non-empty"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def materials(
    plot: Path = typer.Option(
        None,
        callback=picture_file,
        help="Write a picture of the catalogue (pairwise scatter with chunk grid).",
    ),
    catalogue: Path = typer.Option(None, help="Catalogue CSV; default: the shipped catalogue."),
) -> None:
    """Print counts of the material catalogue (per class, per source, non-empty chunks); optionally plot."""
    with one_line("--catalogue"):
        table_catalogue = load_catalogue(catalogue)
    console.print(count_table(table_catalogue))
    if plot is not None:
        plot_catalogue(table_catalogue, plot)
        console.print(f"wrote {plot}")
