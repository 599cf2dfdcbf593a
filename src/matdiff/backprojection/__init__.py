"""Backprojection: a generated field (3, *spatial) -> a matrix/particle design (SPEC 6).

`backproject(field, catalogue)` fits the two materials (Gaussian mixture), labels the elements, matches
equal circles (2D) or spheres (3D) by skeletonization and looks the materials up in the catalogue.
"""

from matdiff.backprojection.backproject import Backprojection, backproject
from matdiff.backprojection.particles import NoParticleMatch, ParticleMatch, match_particles

__all__ = [
    "Backprojection",
    "NoParticleMatch",
    "ParticleMatch",
    "backproject",
    "match_particles",
]
