"""Material catalogue: real engineering materials (E GPa, nu, rho g/cm^3), normalization and chunks."""

from matdiff.materials.catalogue import Catalogue, chunk_index, load_catalogue, parse_catalogue

__all__ = ["Catalogue", "chunk_index", "load_catalogue", "parse_catalogue"]
