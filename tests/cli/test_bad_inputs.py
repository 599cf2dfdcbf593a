"""Every user mistake gets one line: exit code 2, a message naming the problem, no traceback, and no work."""

import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

from matdiff.cli.app import app

runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A folder with a tiny field store, a particle-dataset look-alike and a plain file."""
    root = tmp_path_factory.mktemp("bad-inputs")
    store = zarr.open_group(str(root / "fields.zarr"), mode="w")
    store.create_array("fields", data=np.zeros((4, 3, 8, 8), dtype=np.float32))
    store.attrs.update({"complete": True})
    zarr.open_group(str(root / "particles.zarr"), mode="w").attrs.update({"format": "matdiff.particles/1"})
    (root / "file.txt").write_text("not a folder")
    return root


PROBES = [
    ("train --data {root}/nope.zarr --out {root}/r --preset tiny --steps 5", "no dataset"),
    ("train --data {root}/fields.zarr --out {root}/r --preset bogus", "unknown preset"),
    ("train --data {root}/fields.zarr --out {root}/r --preset tiny --steps 0", "--steps"),
    ("train --data {root}/fields.zarr --out {root}/r --preset tiny --batch 0", "--batch"),
    ("train --data {root}/fields.zarr --out {root}/r --preset tiny --ckpt-every 0", "--ckpt-every"),
    ("train --data {root}/fields.zarr --out {root}/r --preset tiny --lr nan", "finite"),
    ("train --data {root}/fields.zarr --out {root}/r --preset tiny --seed -1", "--seed"),
    ("train --data {root}/fields.zarr --out {root}/r --preset tiny --device bogus", "unknown device"),
    ("sample --n 0 --out {root}/s", "--n"),
    ("sample --batch 0 --out {root}/s", "--batch"),
    ("sample --steps 2000 --out {root}/s --device cpu", "1..1000"),
    ("sample --eta nan --out {root}/s", "--eta"),
    ("sample --out {root}/s --device cuda:99", "CUDA"),
    ("design --target-bulk 100 --device bogus --out {root}/d", "unknown device"),
    ("design --target-bulk 100 --device cuda:99 --out {root}/d", "CUDA"),
    ("design --target-bulk 100 --out {root}/file.txt/d", "cannot write"),
    ("design --target-bulk 100 --seed -1 --out {root}/d", "--seed"),
    ("design --target-bulk 100 --strength inf --out {root}/d", "finite"),
    ("design --target-bulk 100 --steps 5000 --out {root}/d --device cpu", "1..1000"),
    ("design --target-bulk 100 --refine-neighbours 0 --out {root}/d", "--refine-neighbours"),
    ("design --target-bulk 100 --refine-neighbours 9999 --out {root}/d", "catalogue's"),
    ("evaluate --targets 50 --refine-neighbours 9999 --out {root}/e", "catalogue's"),
    ("evaluate --targets -5 --out {root}/e", "target bulk modulus"),
    ("evaluate --targets 50,abc --out {root}/e", "targets must be"),
    ("quality --device bogus --out {root}/q", "unknown device"),
    ("dataset generate --catalogue {root}/missing.csv --out {root}/g.zarr --n 2", "missing.csv"),
    ("dataset generate --dim 4 --out {root}/g.zarr --n 2", "dim"),
    ("dataset inspect {root}/nope.zarr", "no dataset"),
    ("materials --plot {root}/catalogue.xyz", "xyz"),
    ("materials --catalogue {root}/missing.csv", "missing.csv"),
    ("styles make --style digits --out {root}/particles.zarr --n 4", "not a style store"),
    ("styles make --style digits --out {root}/digits.zarr --n 6000", "5000 digits"),
    ("optimize-noise --target-C orthotropic --out {root}/o --threads -1", "--threads"),
    ("optimize-noise --target-C orthotropic --out {root}/o --tol nan", "--tol"),
    ("optimize-noise --target-C orthotropic --out {root}/o --model {bundled}", "1-channel"),
    ("optimize-noise --objective bogus --target-C orthotropic --out {root}/o", "unknown objective"),
    ("optimize-noise --objective stiffness --out {root}/o", "needs a target"),
    ("optimize-noise --objective energy-curve --alpha 1.5 --out {root}/o", "--alpha"),
    ("optimize-noise --objective energy-curve --alpha nan --out {root}/o", "--alpha"),
    ("optimize-noise --objective energy-curve --group 1 --out {root}/o", "does not apply"),
    ("optimize-noise --objective energy-curve --fields E --out {root}/o", "fields are density"),
    ("optimize-noise --objective stress-curve --alpha 0.3 --group 1 --out {root}/o", "does not apply"),
    ("optimize-noise --objective stress-curve --out {root}/o", "needs exactly one"),
    ("optimize-noise --objective stress-curve --group 1 --target-digits 1,2 --out {root}/o", "exactly one"),
    ("optimize-noise --objective stress-curve --group 4 --out {root}/o", "Table 1"),
    ("optimize-noise --objective stress-curve --group 1 --fields E --out {root}/o", "both fields"),
    ("optimize-noise --objective stress-curve --target-digits 1,2 --fields E,nu --out {root}/o", "E,sigma0"),
    ("optimize-noise --objective stress-curve --target-digits 1,2 --fields E,E --out {root}/o", "once"),
    ("optimize-noise --objective stress-curve --target-digits 7 --out {root}/o", "SEED_E,SEED_S"),
    ("optimize-noise --objective stress-curve --group 1 --max-iter 0 --out {root}/o", "--max-iter"),
]


@pytest.mark.parametrize("command, message", PROBES, ids=[p[0].split(" --out")[0][:60] for p in PROBES])
def test_a_bad_input_gives_one_line_and_exit_code_2(files, command, message):
    from importlib import resources

    bundled = resources.files("matdiff.diffusion") / "default_model"
    result = runner.invoke(app, command.format(root=files, bundled=bundled).split())
    output = " ".join(result.output.split())  # rich wraps long messages in a box
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output and message in output
    assert not any(
        (files / name).exists() for name in ("r", "s", "d", "e", "q", "g.zarr", "o", "digits.zarr")
    )
