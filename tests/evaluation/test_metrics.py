"""Seed A's metrics on hand-made cases."""

import numpy as np
import pytest

from matdiff.evaluation import chunk_coverage, frac_within, margin_table, relative_error
from matdiff.materials import load_catalogue


def test_relative_error_and_frac_on_hand_made_values():
    K = np.array([100.0, 101.0, 104.0, 110.0, np.nan])
    err = relative_error(K, 100.0)
    np.testing.assert_allclose(err[:4], [0.0, 0.01, 0.04, 0.10])
    assert frac_within(err, 0.01) == pytest.approx(2 / 5)  # NaN (failed design) counts as a miss
    assert frac_within(err, 0.05) == pytest.approx(3 / 5)
    assert frac_within(np.array([]), 0.05) == 0.0


def test_chunk_coverage_counts_distinct_chunks_of_hits_only():
    cat = load_catalogue()
    chunks = cat.chunks
    a = int(np.flatnonzero(chunks == chunks[0])[0])
    b = int(np.flatnonzero(chunks != chunks[0])[0])
    n_chunks = len(cat.nonempty_chunks)
    # two hits using materials of two chunks, a miss using a third material that must not count
    c = int(np.flatnonzero((chunks != chunks[a]) & (chunks != chunks[b]))[0])
    cov = chunk_coverage(np.array([a, a, c]), np.array([b, a, c]), np.array([True, True, False]), cat)
    assert cov == pytest.approx(2 / n_chunks)
    assert chunk_coverage(np.array([a]), np.array([b]), np.array([False]), cat) == 0.0


def test_margin_table_relative_and_absolute_columns():
    cat = load_catalogue()
    K = np.array([100.5, 103.0, 120.0])
    row = margin_table(K, 100.0, np.array([0, 1, 2]), np.array([0, 1, 2]), cat)
    assert row["frac@1%"] == pytest.approx(1 / 3)
    assert row["frac@5%"] == pytest.approx(2 / 3)
    assert row["frac@1GPa"] == pytest.approx(1 / 3)
    assert row["frac@5GPa"] == pytest.approx(2 / 3)
    assert row["cov@1%"] == pytest.approx(len(np.unique(cat.chunks[[0]])) / len(cat.nonempty_chunks))


def test_reevaluation_averages_fresh_realizations_and_flags_unrealizable_designs():
    from matdiff.evaluation import reevaluate
    from matdiff.microstructure import ParticleDesign

    cat = load_catalogue()
    same = ParticleDesign(
        matrix=5, particle=5, radius=0.1, volume_fraction=0.2
    )  # homogeneous: K = E / (3 (1 - 2 nu))
    crowded = ParticleDesign(matrix=5, particle=9, radius=0.16, volume_fraction=0.73)  # beyond random packing
    mean, std, reasons = reevaluate([same, None, crowded], 2, 16, np.random.default_rng(0), 3, cat)
    expected = cat.E[5] / (3 * (1 - 2 * cat.nu[5]))
    assert mean[0] == pytest.approx(expected, rel=1e-5) and std[0] < 1e-5 * expected
    assert np.isnan(mean[1]) and reasons[1] == "no design"
    assert np.isnan(mean[2]) and reasons[2].startswith("not realizable") and "packing" in reasons[2]
    assert reasons[0] == ""


def test_a_design_whose_fem_solve_fails_gets_nan_and_a_reason_the_others_their_values(monkeypatch):
    import torch

    from matdiff import fem
    from matdiff.evaluation import reevaluate
    from matdiff.microstructure import ParticleDesign

    cat = load_catalogue()
    designs = [ParticleDesign(5, 9, 0.1, 0.2), ParticleDesign(9, 5, 0.1, 0.2)]
    reference, _, _ = reevaluate(designs, 2, 8, np.random.default_rng(0), 2, cat)
    real = fem.bulk_modulus

    def fails_for_design_1(E, nu, **kwargs):  # the fields of design 1 are rows 2 and 3 of the batch
        assert kwargs["options"].on_failure == "retry"  # float32 first, failed samples again in float64
        return real(E, nu, **kwargs).masked_fill(torch.arange(len(E)) == 3, float("nan"))

    monkeypatch.setattr(fem, "bulk_modulus", fails_for_design_1)
    mean, _, reasons = reevaluate(designs, 2, 8, np.random.default_rng(0), 2, cat)
    assert mean[0] == reference[0] and reasons[0] == ""
    assert np.isnan(mean[1]) and reasons[1] == "FEM solve did not converge for 1 of 2 fields"


def test_free_materials_are_evaluated_on_the_same_microstructures_as_the_catalogue_design():
    """Seed A's "free" stage: the fitted (matrix, particle) values replace the catalogue rows on the same
    placements; given the catalogue rows' own values they reproduce the catalogue evaluation exactly, and a
    homogeneous free material gives the closed form E / (3 (1 - 2 nu))."""
    from matdiff.evaluation import reevaluate
    from matdiff.microstructure import ParticleDesign

    cat = load_catalogue()
    design = ParticleDesign(matrix=5, particle=9, radius=0.1, volume_fraction=0.25)
    own = cat.normalize(cat.props[[5, 9]])
    catalogue_K = reevaluate([design], 2, 16, np.random.default_rng(1), 3, cat)
    same_K = reevaluate([design], 2, 16, np.random.default_rng(1), 3, cat, materials=[own])
    np.testing.assert_allclose(same_K[0], catalogue_K[0], rtol=1e-6)
    np.testing.assert_allclose(same_K[1], catalogue_K[1], rtol=1e-5, atol=1e-6)
    one = cat.normalize(cat.props[[5, 5]])
    homogeneous = reevaluate([design], 2, 16, np.random.default_rng(1), 3, cat, materials=[one])[0]
    assert homogeneous[0] == pytest.approx(cat.E[5] / (3 * (1 - 2 * cat.nu[5])), rel=1e-5)
