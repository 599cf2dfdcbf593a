"""Pieces shared by the CLI commands: the console and the device option."""

from __future__ import annotations

import typer
from rich.console import Console

console = Console()


def device_option() -> str:
    """The `--device` option: auto (CUDA if available), cpu, cuda or cuda:N."""
    return typer.Option("auto", help="Device: auto (CUDA if available), cpu, cuda, cuda:N.")


def resolve_device(device: str) -> str:
    """Map 'auto' to 'cuda' when a GPU is visible, else 'cpu'; other values pass through."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
