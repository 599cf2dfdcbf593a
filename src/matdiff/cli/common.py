"""Pieces shared by the CLI commands: the console, the device option, and checks that turn a user's mistake
into one line (typer's BadParameter, exit code 2) before any work starts."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console

console = Console()


def check_device(text: str) -> str:
    """Callback of ``--device``: auto, cpu, cuda or cuda:N of a device that exists here."""
    import torch

    from matdiff.diffusion import resolve_device

    try:
        device = resolve_device(text)
    except RuntimeError:
        raise typer.BadParameter(f"unknown device {text!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise typer.BadParameter(f"{text!r}: this machine has no usable CUDA device; use cpu or auto")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise typer.BadParameter(f"{text!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    if device.type not in ("cpu", "cuda"):
        raise typer.BadParameter(f"device {text!r} is not supported; use auto, cpu, cuda or cuda:N")
    return text


def device_option() -> str:
    """The `--device` option: auto (CUDA if available), cpu, cuda or cuda:N, checked at parse time."""
    return typer.Option(
        "auto", callback=check_device, help="Device: auto (CUDA if available), cpu, cuda, cuda:N."
    )


def _probe(target: Path, folder: Path) -> None:
    """BadParameter unless a file can be created in ``folder``'s nearest existing folder (for ``target``)."""
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise typer.BadParameter(f"cannot write {target}: {folder} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise typer.BadParameter(f"cannot write {target}: {err.strerror} ({folder})") from None


def writable_folder(path: Path | None) -> Path | None:
    """Callback of folder (and zarr store) outputs: the path if it is, or can become, a writable folder."""
    if path is not None:
        _probe(path, path)
    return path


def writable_file(path: Path | None) -> Path | None:
    """Callback of file outputs: the path if it is no folder and its folder is, or can be made, writable."""
    if path is not None:
        if path.is_dir():
            raise typer.BadParameter(f"{path} is a folder; give a file name")
        _probe(path, path.parent)
    return path


def finite(value: float | None) -> float | None:
    """Callback of float options: NaN and infinity refused (typer's min and max let NaN through)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"must be a finite number, got {value}")
    return value


@contextmanager
def one_line(hint: str | None = None) -> Iterator[None]:
    """Turn a ValueError or OSError raised in the block (a bad argument, a missing or unreadable file) into
    BadParameter: its message on one line, exit code 2, no traceback."""
    try:
        yield
    except (ValueError, OSError) as err:
        raise typer.BadParameter(str(err), param_hint=hint) from None


def check_steps(model, steps: int) -> None:
    """BadParameter unless ``model``'s noise schedule can be sampled in ``steps`` DDIM steps."""
    from matdiff.diffusion.sampling import ddim_steps

    with one_line("--steps"):
        ddim_steps(model.scheduler(), steps)
