"""Refinement after backprojection: common-microstructure root find, the campaign stage and its honesty."""

import json

import numpy as np
import pytest

from matdiff.evaluation import Evaluator, run_campaign
from matdiff.evaluation import campaign as campaign_module
from matdiff.evaluation import refine as refine_module
from matdiff.evaluation.reevaluate import quantity_of_fields
from matdiff.evaluation.refine import (
    Refinement,
    common_masks,
    count_range,
    count_weights,
    neighbours,
    refine_designs,
)
from matdiff.guidance import target_bulk_modulus
from matdiff.materials import load_catalogue
from matdiff.methods import Proposals
from matdiff.microstructure import VOLUME_FRACTION_RANGE, ParticleDesign, ball_volume, field_from_mask
from matdiff.microstructure import particles as particles_module

CATALOGUE = load_catalogue()
PHASE_K = CATALOGUE.E / (3 * (1 - 2 * CATALOGUE.nu))
SOFT = int(np.argmin(np.abs(PHASE_K - 60)))  # Tin, K = 59.5 GPa
STIFF = int(np.argmin(np.abs(PHASE_K - 200)))  # a zirconia-toughened alumina, K = 204 GPa
TARGET = 100.0  # between the two: reachable by the volume fraction alone
SMALL = Refinement(neighbours=3, per_round=3, rounds=1, realizations=4, roots=2)
"""Few pairs, few microstructures: a refinement of a few hundred 24x24 solves."""


class FixedDesigns:
    """A stand-in method proposing given particle designs (with given proposal-level reasons)."""

    name = "fixed"

    def __init__(self, designs, reasons=None):
        self.designs, self.reasons = designs, reasons or [""] * len(designs)

    def settings(self):
        return {"method": self.name}

    def propose(self, objective, n, seed):
        return Proposals(designs=self.designs[:n], reasons=self.reasons[:n])


def evaluator(realizations=8):
    return Evaluator(CATALOGUE, dim=2, size=24, realizations=realizations)


def test_count_weights_are_the_stochastic_rounding_of_the_particle_count():
    assert count_weights(3.25) == [(3, 0.75), (4, 0.25)]
    assert count_weights(5.0) == [(5, 1.0)]
    assert count_weights(0.4) == [(1, 1.0)]  # at least one particle, as particle_count
    rng = np.random.default_rng(0)
    radius = 0.1
    x = 0.3 / ball_volume(radius, 2)
    draws = [particles_module.particle_count(0.3, radius, 2, rng) for _ in range(4000)]
    (low, p_low), (high, p_high) = count_weights(x)
    assert set(draws) == {low, high} and np.mean(np.array(draws) == high) == pytest.approx(p_high, abs=0.03)


@pytest.mark.parametrize("radius", [0.075, 0.1, 0.2])
def test_count_range_keeps_the_volume_fraction_in_its_valid_range(radius):
    lo, hi = count_range(radius, 2)
    vf_lo, vf_hi = VOLUME_FRACTION_RANGE[2]
    volume = ball_volume(radius, 2)
    assert 1 <= lo < hi
    assert lo * volume >= vf_lo - 1e-9 and hi * volume <= vf_hi + 1e-9
    assert (lo - 1) * volume < vf_lo or lo == 1 and (hi + 1) * volume > vf_hi


def test_neighbours_are_nearest_first_with_the_material_itself_first():
    rows, distances = neighbours(SOFT, 5, CATALOGUE)
    assert rows[0] == SOFT and distances[0] == 0 and np.all(np.diff(distances) >= 0)
    table = CATALOGUE.normalized_props
    fifth = np.sort(np.linalg.norm(table - table[SOFT], axis=1))[4]
    assert distances[-1] == pytest.approx(fifth)


def test_volume_fraction_root_hits_the_target_on_the_common_microstructures():
    design = ParticleDesign(SOFT, STIFF, 0.12, 0.15)
    result = refine_designs([design], TARGET, SMALL, CATALOGUE, 2, 24, seed=5)
    refined = result.designs[0]
    assert refined.changed and refined.K_after == pytest.approx(TARGET, rel=1e-9)
    assert (refined.design.matrix, refined.design.particle) == (SOFT, STIFF)  # its own pair reaches K*
    vf_lo, vf_hi = VOLUME_FRACTION_RANGE[2]
    assert vf_lo <= refined.design.volume_fraction <= vf_hi and result.solves > 0
    # recompute E[K] at the refined vf from the same microstructures, outside the refinement's cache
    x = refined.design.volume_fraction / ball_volume(0.12, 2)
    expected = 0.0
    for count, weight in count_weights(x):
        masks = common_masks(2, 24, 0.12, count, SMALL.realizations, seed=5)
        fields = np.moveaxis(field_from_mask(masks, SOFT, STIFF, CATALOGUE), 1, 0)
        expected += weight * quantity_of_fields(fields, CATALOGUE).mean()
    assert expected == pytest.approx(TARGET, rel=1e-5)


def test_refinement_brings_the_independent_error_down_on_a_reachable_target():
    method = FixedDesigns([ParticleDesign(SOFT, STIFF, 0.12, 0.15)])
    result = run_campaign(method, [target_bulk_modulus(TARGET)], 1, evaluator(), refine=SMALL)
    row = result.rows[0][0]
    assert row["refined"] and row["before_relative_error"] > 0.2
    assert row["relative_error"] < 0.05 and row["relative_error"] < row["before_relative_error"] / 5
    table = result.table[0]
    assert table["frac@5%"] == 1.0 and table["frac@5%_before"] == 0.0 and table["refined"] == 1
    assert table["cov@5%"] >= table["cov@5%_before"]


def test_off_switch_leaves_the_proposals_and_before_columns_equal_an_unrefined_run():
    designs = [ParticleDesign(SOFT, STIFF, 0.12, 0.15), ParticleDesign(STIFF, SOFT, 0.1, 0.3)]
    objectives = [target_bulk_modulus(TARGET)]
    off = run_campaign(FixedDesigns(designs), objectives, 2, evaluator(4), refine=None)
    on = run_campaign(FixedDesigns(designs), objectives, 2, evaluator(4), refine=SMALL)
    assert not any(key.startswith(("before_", "refine")) for key in off.rows[0][0])
    assert "frac@1%_before" not in off.table[0]
    for plain, refined, design in zip(off.rows[0], on.rows[0], designs, strict=True):
        assert (plain["matrix_row"], plain["volume_fraction"]) == (design.matrix, design.volume_fraction)
        for key in campaign_module.BEFORE_KEYS:
            assert refined[f"before_{key}"] == plain[key]


def test_the_final_reevaluation_uses_microstructures_the_refinement_did_not_see(monkeypatch):
    seen = {"refinement": [], "reevaluation": []}

    def recorder(stage, place):
        def record(n, radius, dim, rng):
            centres = place(n, radius, dim, rng)
            seen[stage].append(centres.tobytes())
            return centres

        return record

    refinement = recorder("refinement", refine_module.place_particles)
    reevaluation = recorder("reevaluation", particles_module.place_particles)
    monkeypatch.setattr(refine_module, "place_particles", refinement)
    monkeypatch.setattr(particles_module, "place_particles", reevaluation)
    method = FixedDesigns([ParticleDesign(SOFT, STIFF, 0.12, 0.15)])
    result = run_campaign(method, [target_bulk_modulus(TARGET)], 1, evaluator(), refine=SMALL)
    assert result.rows[0][0]["refined"]
    assert len(seen["refinement"]) > 0 and len(seen["reevaluation"]) == 2 * 8  # before + after
    assert not set(seen["refinement"]) & set(seen["reevaluation"])
    # and the after-stream is neither the unit's first stream nor the refinement's
    assert campaign_module.AFTER_STREAM != refine_module.REFINE_STREAM


def test_invalid_designs_stay_invalid_and_untouched():
    designs = [None, ParticleDesign(SOFT, STIFF, 0.1, 0.9), ParticleDesign(SOFT, STIFF, 0.12, 0.15)]
    reasons = ["", "", "left out of guidance at step 3"]
    method = FixedDesigns(designs, reasons)
    result = run_campaign(method, [target_bulk_modulus(TARGET)], 3, evaluator(2), refine=SMALL)
    for row in result.rows[0]:
        assert not row["valid"] and not row["refined"] and row["refine_note"] == "invalid: untouched"
        assert row["reason"] == row["before_reason"] and row["matrix_row"] == row["before_matrix_row"]
    assert result.rows[0][1]["reason"].startswith("not realizable")
    assert result.rows[0][2]["reason"] == "left out of guidance at step 3"
    assert result.table[0]["valid"] == 0 and result.table[0]["refined"] == 0


def test_identical_designs_are_refined_onto_distinct_material_pairs():
    design = ParticleDesign(SOFT, STIFF, 0.12, 0.15)
    result = refine_designs([design, design], TARGET, SMALL, CATALOGUE, 2, 24, seed=0)
    pairs = {(r.design.matrix, r.design.particle) for r in result.designs}
    assert all(r.changed for r in result.designs) and len(pairs) == 2
    assert all(r.K_after == pytest.approx(TARGET) for r in result.designs)


def test_a_density_weight_never_picks_a_heavier_design_than_without():
    design = ParticleDesign(SOFT, STIFF, 0.12, 0.15)
    plain = refine_designs([design], TARGET, SMALL, CATALOGUE, 2, 24, seed=0).designs[0]
    light = refine_designs([design], TARGET, SMALL, CATALOGUE, 2, 24, seed=0, density_weight=100.0).designs[0]
    assert light.K_after == pytest.approx(TARGET)
    assert light.design.density(CATALOGUE) <= plain.design.density(CATALOGUE) + 1e-12


def test_the_stage_is_stored_beside_its_unit_and_reused(tmp_path, monkeypatch):
    method = FixedDesigns([ParticleDesign(SOFT, STIFF, 0.12, 0.15)])
    objectives = [target_bulk_modulus(TARGET)]
    out = tmp_path / "run"
    first = run_campaign(method, objectives, 1, evaluator(2), out=out, refine=SMALL)
    stored = json.loads((out / "units" / "target_0_chunk_0.refined.json").read_text())
    assert stored["request"]["refinement"] == SMALL.settings()
    assert json.loads((out / "target_0.json").read_text())["refinement"]["enabled"] is True

    def fail(*args, **kwargs):
        raise AssertionError("refined again")

    monkeypatch.setattr(campaign_module, "refine_designs", fail)
    again = run_campaign(method, objectives, 1, evaluator(2), out=out, refine=SMALL)
    assert again.rows[0][0]["value"] == pytest.approx(first.rows[0][0]["value"])
    with pytest.raises(AssertionError, match="refined again"):  # other settings: recomputed, not reused
        run_campaign(method, objectives, 1, evaluator(2), out=out, refine=Refinement(neighbours=2))


@pytest.mark.parametrize("bad", [{"neighbours": 0}, {"realizations": -1}, {"rounds": 1.5}])
def test_bad_settings_are_refused_in_one_line(bad):
    with pytest.raises(ValueError, match="positive integer") as error:
        Refinement(**bad)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="exceed the catalogue"):
        Refinement(neighbours=len(CATALOGUE) + 1).check(CATALOGUE)
