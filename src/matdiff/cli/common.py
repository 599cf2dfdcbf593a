"""Pieces shared by the CLI commands: the console and the device option."""

from __future__ import annotations

import typer
from rich.console import Console

console = Console()


def device_option() -> str:
    """The `--device` option: auto (CUDA if available), cpu, cuda or cuda:N."""
    return typer.Option("auto", help="Device: auto (CUDA if available), cpu, cuda, cuda:N.")
