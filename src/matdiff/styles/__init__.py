"""Seed B's style datasets: handwritten digits and orthotropic metamaterial cells, 32x32 in [-1, 1].

All styles use bright = solid (+1 solid, -1 void), so a design density is x_tilde = P(x) for every style.
"""

from matdiff.styles.digits import digits_dataset
from matdiff.styles.metamaterial import (
    grayscale_cells,
    is_orthotropic,
    is_periodically_connected,
    metamaterial_cell,
    metamaterial_cells,
    metamaterial_dataset,
)
from matdiff.styles.store import (
    MODELS_DIR,
    STYLES,
    bundled_model_path,
    make_style_store,
    style_fields,
    write_style_store,
)

__all__ = [
    "MODELS_DIR",
    "STYLES",
    "bundled_model_path",
    "digits_dataset",
    "grayscale_cells",
    "is_orthotropic",
    "is_periodically_connected",
    "make_style_store",
    "metamaterial_cell",
    "metamaterial_cells",
    "metamaterial_dataset",
    "style_fields",
    "write_style_store",
]
