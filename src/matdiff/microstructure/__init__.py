"""Matrix/particle microstructures (SPEC 2): sampling, overlap-free placement, masks and fields."""

from matdiff.microstructure.packing import ball_volume, check_packable, place_particles
from matdiff.microstructure.particles import (
    DIAMETER_RANGE,
    VOLUME_FRACTION_RANGE,
    ParticleDesign,
    ParticleRealization,
    element_centres,
    field_from_mask,
    max_particles,
    particle_count,
    particle_mask,
    realize_particles,
    sample_design,
    sample_material,
    sample_particles,
)

__all__ = [
    "DIAMETER_RANGE",
    "VOLUME_FRACTION_RANGE",
    "ParticleDesign",
    "ParticleRealization",
    "ball_volume",
    "check_packable",
    "element_centres",
    "field_from_mask",
    "max_particles",
    "particle_count",
    "particle_mask",
    "place_particles",
    "realize_particles",
    "sample_design",
    "sample_material",
    "sample_particles",
]
