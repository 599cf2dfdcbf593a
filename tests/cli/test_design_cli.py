"""`matdiff design`, `evaluate` and `quality` end to end on the bundled model, with tiny settings."""

import json
import shutil
from importlib import resources

import pytest
from typer.testing import CliRunner

from matdiff.cli.app import app

runner = CliRunner()
FAST = ["--steps", "3", "--realizations", "2", "--device", "cpu"]


def test_design_writes_table_json_csv_and_png(tmp_path):
    out = tmp_path / "design"
    result = runner.invoke(app, ["design", "--target-bulk", "80", "--n", "2", "--out", str(out), *FAST])
    assert result.exit_code == 0, result.output
    assert "proposals for K* = 80" in result.output
    payload = json.loads((out / "design.json").read_text())
    assert payload["target_bulk_GPa"] == 80 and len(payload["proposals"]) == 2
    assert payload["guidance"]["steps"] == 3 and payload["seed"] == 0
    assert payload["refine"]["enabled"] is True and "before_value" in payload["proposals"][0]
    assert (out / "proposals.csv").read_text().count("\n") == 3
    assert (out / "designs.png").stat().st_size > 0


def test_design_no_refine_records_the_switch_and_keeps_the_proposals(tmp_path):
    from matdiff.cli.design import neighbours_option
    from matdiff.evaluation.refine import Refinement

    assert neighbours_option().default == Refinement().neighbours
    out = tmp_path / "design"
    args = ["design", "--target-bulk", "80", "--n", "2", "--out", str(out), "--no-refine", *FAST]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads((out / "design.json").read_text())
    assert payload["refine"] == {"enabled": False}
    assert not any(key.startswith("before_") for key in payload["proposals"][0])


@pytest.mark.parametrize("target", ["0", "-3", "nan"])
def test_design_rejects_bad_targets(tmp_path, target):
    result = runner.invoke(app, ["design", "--target-bulk", target, "--out", str(tmp_path), *FAST])
    assert result.exit_code != 0
    assert "target bulk modulus" in result.output


def test_design_rejects_unknown_method(tmp_path):
    result = runner.invoke(app, ["design", "--target-bulk", "50", "--method", "cfg", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "unknown guidance method" in result.output


def test_design_rejects_model_of_another_catalogue(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(resources.files("matdiff.diffusion") / "default_model", model)
    config = json.loads((model / "config.json").read_text())
    config["catalogue_hash"] = "0" * 64
    (model / "config.json").write_text(json.dumps(config))
    result = runner.invoke(
        app, ["design", "--target-bulk", "50", "--model", str(model), "--out", str(tmp_path)]
    )
    assert result.exit_code != 0 and "catalogue" in result.output


def test_evaluate_and_quality_write_tables(tmp_path):
    out = tmp_path / "eval"
    args = ["evaluate", "--targets", "40,120", "--n", "2", "--batch", "2", "--out", str(out), *FAST]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "table.csv").read_text().startswith("target_GPa,n,valid,frac@1%")
    assert "frac@1%_before" in (out / "table.csv").read_text()
    assert json.loads((out / "evaluate.json").read_text())["refine"]["enabled"] is True
    assert (out / "frac_cov.png").exists() and (out / "target_1.json").exists()
    again = runner.invoke(app, args)  # finished targets are reused, not recomputed
    assert again.exit_code == 0 and "reusing" in again.output
    other = runner.invoke(app, [*args[:2], "50,120", *args[3:]])  # same folder, another request: refused
    assert other.exit_code == 2 and "another request" in other.output and "Traceback" not in other.output
    result = runner.invoke(app, ["quality", "--n", "2", "--steps", "2", "--out", str(tmp_path / "q")])
    assert result.exit_code == 0, result.output
    assert 0 <= json.loads((tmp_path / "q" / "quality.json").read_text())["coverage"] <= 1
