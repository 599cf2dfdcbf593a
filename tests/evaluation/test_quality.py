"""The prior quality report: measures on fields whose answers are known, the picture, the CLI."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from matdiff.evaluation.quality import (
    QUALITY_TARGETS,
    check_targets,
    compare,
    fresh_particle_fields,
    measure_fields,
    quality_png,
    summarize,
    two_means,
)
from matdiff.materials import load_catalogue


def test_two_phase_measure_is_one_for_two_values_and_zero_for_one():
    values = np.zeros((100, 3))
    values[:30] = 1.0
    r, centres = two_means(values)
    assert r == pytest.approx(1.0) and sorted(centres[:, 0].tolist()) == pytest.approx([0.0, 1.0])
    assert two_means(np.ones((50, 3)))[0] == 0.0
    ramp = np.linspace(-1, 1, 1000)[:, None].repeat(3, 1)  # uniform values: 1 - 1/4 explained by 2 means
    assert two_means(ramp)[0] == pytest.approx(0.75, abs=0.01)


def test_fresh_data_measure_as_perfect_and_blurred_data_do_not():
    catalogue = load_catalogue()
    data = fresh_particle_fields(2, 32, 8, catalogue)
    summary = summarize(measure_fields(data, catalogue), catalogue)
    assert summary["two_phase"] == pytest.approx(1.0) and summary["centre_distance"] < 1e-6
    assert summary["valid_share"] == 1.0 and summary["fit_variance"] < 1e-5
    kernel = torch.ones(3, 1, 5, 5) / 25
    blurred = torch.nn.functional.conv2d(torch.from_numpy(data), kernel, padding=2, groups=3).numpy()
    mixed = 0.5 * data + 0.5 * data[::-1]  # blends of two samples' materials: off the catalogue
    report = compare(summarize(measure_fields(blurred, catalogue), catalogue), summary)
    assert report["samples"]["two_phase"] < 0.98 and not report["targets_met"]["two_phase"]
    assert (
        compare(summarize(measure_fields(mixed, catalogue), catalogue), summary)["samples"]["centre_distance"]
        > 0.01
    )
    half = compare(summarize(measure_fields(0.5 * data, catalogue), catalogue), summary)
    assert half["samples"]["contrast"] == pytest.approx(0.5)


def test_targets_and_picture(tmp_path):
    met = check_targets({"two_phase": 0.96, "contrast": 0.7, "centre_distance": 0.01, "valid_share": 0.99})
    assert met == {"two_phase": True, "contrast": False, "centre_distance": True, "valid_share": True}
    assert set(QUALITY_TARGETS) == set(met)
    fields = np.random.default_rng(0).uniform(-1, 1, (3, 3, 8, 8))
    path = quality_png(tmp_path / "q.png", fields, fields[::-1])
    assert path.stat().st_size > 0


def test_quality_cli_writes_report_and_picture(tmp_path):
    from matdiff.cli.app import app

    out = tmp_path / "q"
    result = CliRunner().invoke(app, ["quality", "--n", "3", "--steps", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    payload = json.loads((out / "quality.json").read_text())
    assert payload["data"]["two_phase"] == pytest.approx(1.0) and "targets_met" in payload
    assert (out / "quality.png").stat().st_size > 0 and "two_phase" in result.output
    bad = CliRunner().invoke(app, ["quality", "--style", "cats", "--out", str(out)])
    assert bad.exit_code == 2 and "--style" in bad.output
