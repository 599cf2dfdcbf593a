"""Command-line interface: a thin layer that wires the library stages together."""
