"""Where a campaign's work units run: an executor maps a function over units and yields results as they come.

``LocalExecutor`` runs them one after another in this process. An executor for a pool of workers (e.g. Ray
actors that load the model once) implements the same ``map``; the campaign stores every result as it
arrives, so a killed run redoes only the units whose results are missing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, TypeVar

Unit = TypeVar("Unit")
Result = TypeVar("Result")


class Executor(Protocol):
    """Runs ``fn`` on every unit; yields (unit, result) pairs in completion order."""

    def map(self, fn: Callable[[Unit], Result], units: Sequence[Unit]) -> Iterator[tuple[Unit, Result]]: ...


class LocalExecutor:
    """Every unit in this process, in order."""

    def map(self, fn: Callable[[Unit], Result], units: Sequence[Unit]) -> Iterator[tuple[Unit, Result]]:
        for unit in units:
            yield unit, fn(unit)
