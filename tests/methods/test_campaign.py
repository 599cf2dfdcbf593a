"""Design methods in one campaign: plan, units, resume, evaluation of particle and image designs."""

import json

import numpy as np
import pytest

from matdiff.evaluation import Evaluator, LocalExecutor, ResumeMismatch, plan_units, run_campaign
from matdiff.guidance import GuidanceConfig, TargetObjective, target_bulk_modulus
from matdiff.materials import load_catalogue
from matdiff.methods import GuidedDiffusion, ImageDesign, Proposals
from matdiff.microstructure import ParticleDesign


@pytest.fixture(scope="module")
def tiny_method(tiny_model) -> GuidedDiffusion:
    return GuidedDiffusion(tiny_model, load_catalogue(), GuidanceConfig(steps=3), progress=False)


class FixedDesigns:
    """A stand-in method that proposes given particle designs (counts its calls)."""

    name = "fixed"

    def __init__(self, designs):
        self.designs, self.calls = designs, []

    def settings(self):
        return {"method": self.name}

    def propose(self, objective, n, seed):
        self.calls.append((n, seed))
        return Proposals(designs=self.designs[:n], reasons=[""] * n, columns={"seed": [seed] * n})


def test_plan_units_cover_every_design_with_stable_seeds():
    units = plan_units(2, 5, 2, seed=7)
    assert [(u.target, u.chunk, u.n, u.seed) for u in units] == [
        (0, 0, 2, 7),
        (0, 1, 2, 8),
        (0, 2, 1, 9),
        (1, 0, 2, 1007),
        (1, 1, 2, 1008),
        (1, 2, 1, 1009),
    ]
    with pytest.raises(ValueError, match="batch"):
        plan_units(1, 3, 0, 0)


def test_particle_designs_are_reevaluated_and_scored(tmp_path):
    catalogue = load_catalogue()
    homogeneous = ParticleDesign(5, 5, 0.1, 0.2)  # K = E / (3 (1 - 2 nu)) exactly
    K = catalogue.E[5] / (3 * (1 - 2 * catalogue.nu[5]))
    method = FixedDesigns([homogeneous, None])
    evaluator = Evaluator(catalogue, dim=2, size=16, realizations=2)
    result = run_campaign(method, [target_bulk_modulus(K), target_bulk_modulus(2 * K)], 2, evaluator)
    first, second = result.rows
    assert first[0]["valid"] and first[0]["value"] == pytest.approx(K, rel=1e-5)
    assert first[0]["relative_error"] < 1e-5 and second[0]["relative_error"] == pytest.approx(0.5, rel=1e-5)
    assert not first[1]["valid"] and first[1]["reason"] == "no design" and np.isnan(first[1]["value"])
    assert result.table[0]["frac@1%"] == 0.5 and result.table[1]["frac@5%"] == 0.0
    assert result.table[0]["cov@1%"] > 0 and first[0]["density"] == pytest.approx(catalogue.rho[5])
    assert [c[1] for c in method.calls] == [0, 1000]


def test_campaign_resumes_from_unit_files_and_matches_a_fresh_run(tmp_path, tiny_method):
    catalogue = tiny_method.catalogue
    evaluator = Evaluator(catalogue, dim=2, size=8, realizations=2)
    objectives = [target_bulk_modulus(60.0), target_bulk_modulus(150.0)]
    fresh = run_campaign(tiny_method, objectives, 3, evaluator, batch=2, seed=1)
    out = tmp_path / "run"
    run_campaign(tiny_method, objectives[:1], 3, evaluator, batch=2, seed=1, out=out)
    messages = []
    resumed = run_campaign(
        tiny_method, objectives, 3, evaluator, batch=2, seed=1, out=out, log=messages.append
    )
    assert resumed.reused == ["target_0_chunk_0", "target_0_chunk_1"] and len(messages) == 2
    for a, b in zip(fresh.rows, resumed.rows, strict=True):
        assert [r["value"] for r in a] == pytest.approx([r["value"] for r in b], nan_ok=True)
        assert [r["matrix_row"] for r in a] == [r["matrix_row"] for r in b]
    np.testing.assert_array_equal(fresh.fields[1], resumed.fields[1])
    stored = json.loads((out / "target_1.json").read_text())
    assert len(stored["proposals"]) == 3 and stored["metrics"]["n"] == 3
    assert stored["method"]["guidance"]["steps"] == 3


def test_resume_refuses_units_of_another_request(tmp_path, tiny_method):
    evaluator = Evaluator(tiny_method.catalogue, dim=2, size=8, realizations=1)
    out = tmp_path / "run"
    run_campaign(tiny_method, [target_bulk_modulus(50.0)], 1, evaluator, out=out)
    with pytest.raises(ResumeMismatch, match="objective"):
        run_campaign(tiny_method, [target_bulk_modulus(80.0)], 1, evaluator, out=out)
    with pytest.raises(ResumeMismatch, match="unit"):
        run_campaign(tiny_method, [target_bulk_modulus(50.0)], 1, evaluator, out=out, seed=3)
    other = Evaluator(tiny_method.catalogue, dim=2, size=8, realizations=2)
    with pytest.raises(ResumeMismatch, match="evaluation"):
        run_campaign(tiny_method, [target_bulk_modulus(50.0)], 1, other, out=out)


def test_executor_yields_every_unit_in_order():
    assert list(LocalExecutor().map(lambda u: u * u, [1, 2, 3])) == [(1, 1), (2, 4), (3, 9)]


def test_image_designs_are_evaluated_as_they_are():
    density = np.zeros((8, 8))
    density[:, :4] = 1.0  # a laminate: C_11 (across the layers) is Reuss, exactly
    design = ImageDesign(density, E=(1.0, 100.0), nu=0.3)

    class Images(FixedDesigns):
        def propose(self, objective, n, seed):
            return Proposals(designs=[design] * n, reasons=[""] * n, fields=density[None, None].repeat(n, 0))

    props = design.properties()
    assert props.E.shape == (1, 8, 8) and float(props.E.max()) == 100.0
    target = TargetObjective("homogenized_stiffness", np.eye(3).tolist())
    result = run_campaign(Images([]), [target], 2, Evaluator(load_catalogue()))
    C = np.array(result.rows[0][0]["value"])
    E_reuss = 2 / (1 / 1.0 + 1 / 100.0)
    assert C.shape == (3, 3) and C[1, 1] > C[0, 0]  # stiffer along the layers
    assert C[0, 0] == pytest.approx(E_reuss / (1 - 0.3**2), rel=1e-4)  # exact for a laminate
    assert "frac@1%" in result.table[0] and "cov@1%" not in result.table[0]


def test_a_sample_left_out_of_guidance_is_marked_failed_in_json_csv_and_table(
    tmp_path, tiny_method, fem_fails_for_sample_1
):
    from rich.console import Console

    from matdiff.evaluation.report import proposals_table, write_design_report

    evaluator = Evaluator(tiny_method.catalogue, dim=2, size=8, realizations=1)
    result = run_campaign(tiny_method, [target_bulk_modulus(80.0)], 3, evaluator)
    rows = result.rows[0]
    assert rows[1]["valid"] is False and "left out of guidance" in rows[1]["reason"]
    assert result.table[0]["valid"] == sum(r["valid"] for r in rows) <= 2
    write_design_report(tmp_path, result, {})
    assert "FEM solve did not converge" in (tmp_path / "proposals.csv").read_text()
    stored = json.loads((tmp_path / "design.json").read_text())["proposals"][1]
    assert not stored["valid"] and stored["reason"] == rows[1]["reason"]
    console = Console(width=400, record=True)
    console.print(proposals_table(rows, "t"))
    assert "invalid: left out of guidance" in console.export_text()


def test_guided_rows_carry_the_free_stage_of_the_fitted_materials(tiny_method):
    evaluator = Evaluator(load_catalogue(), dim=2, size=8, realizations=2)
    result = run_campaign(tiny_method, [target_bulk_modulus(100.0)], 3, evaluator)
    rows = result.rows[0]
    assert all("value_free" in r for r in rows)
    valid = [r for r in rows if r["valid"]]
    assert valid and all(np.isfinite(r["value_free"]) for r in valid)
    assert {"frac@1%_free", "frac@5%_free"} <= set(result.table[0])
    fits = np.mean([r["material_distance"] for r in rows])
    assert result.table[0]["mean_material_distance"] == pytest.approx(fits)
    assert result.table[0]["mean_fitting_variance"] >= 0
