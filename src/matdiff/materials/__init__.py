"""Material catalogue: real engineering materials (E GPa, nu, rho g/cm^3), normalization and chunks."""

from matdiff.materials.catalogue import Catalogue, chunk_index, load_catalogue, parse_catalogue
from matdiff.materials.fields import Properties, catalogue_properties, interpolated_properties

__all__ = [
    "Catalogue",
    "Properties",
    "catalogue_properties",
    "chunk_index",
    "interpolated_properties",
    "load_catalogue",
    "parse_catalogue",
]
