"""Backprojection: a generated field (3, *spatial) -> matrix/particle design parameters (SPEC 6).

`backproject(field, catalogue)` fits the two materials (Gaussian mixture), labels the elements, matches
equal circles (2D) or spheres (3D) by skeletonization and looks the materials up in the catalogue.
"""

from matdiff.backprojection.backproject import Backprojection, backproject, backproject_batch
from matdiff.backprojection.particles import NoParticleMatch, ParticleMatch, match_particles

__all__ = [
    "Backprojection",
    "NoParticleMatch",
    "ParticleMatch",
    "backproject",
    "backproject_batch",
    "match_particles",
]
