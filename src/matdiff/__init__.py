"""matdiff: physics-guided generative inverse design of material microstructures."""

__version__ = "0.1.0"
