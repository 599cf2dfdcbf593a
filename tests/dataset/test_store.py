"""Dataset stores: round trip, resume after interruption, parameter checks, CLI generate + inspect."""

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from matdiff.cli import dataset as dataset_cli
from matdiff.dataset import IncompleteDatasetError, generate, generate_dataset, open_dataset
from matdiff.materials import parse_catalogue
from matdiff.microstructure import sample_particles


def catalogue_csv() -> bytes:
    """A synthetic 40-material catalogue as CSV bytes."""
    values = np.random.default_rng(0).uniform([1, 0.05, 0.5], [450, 0.45, 9.5], size=(40, 3))
    lines = ["name,class,E_GPa,nu,rho_g_cm3,source"]
    lines += [f"m{i},test,{E:.3f},{nu:.4f},{rho:.3f},synthetic" for i, (E, nu, rho) in enumerate(values)]
    return "\n".join(lines).encode()


@pytest.fixture(scope="module")
def catalogue():
    return parse_catalogue(catalogue_csv())


def assert_same_store(a, b):
    np.testing.assert_array_equal(a.fields[:], b.fields[:])
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])


def test_round_trip(tmp_path, catalogue):
    path = generate_dataset(
        tmp_path / "d.zarr", 2, 16, 70, seed=5, workers=1, catalogue=catalogue, chunk_samples=32
    )
    data = open_dataset(path)
    assert len(data) == 70 and data.fields.shape == (70, 3, 16, 16) and data.fields.dtype == np.float32
    assert data.fields.chunks[0] == 32 and data.done.tolist() == [True, True, True]
    assert data.attrs["complete"] and data.attrs["catalogue_hash"] == catalogue.hash
    assert (data.attrs["dim"], data.attrs["size"], data.attrs["n"], data.attrs["seed"]) == (2, 16, 70, 5)
    fields = data.fields[:]
    assert np.abs(fields).max() <= 1
    for i in (0, 33, 69):
        params, field = sample_particles(2, 16, np.random.default_rng([5, i]), catalogue)
        np.testing.assert_array_equal(fields[i], field)
        assert data.params["matrix"][i] == params.design.matrix
        assert data.params["n_particles"][i] == params.n_particles
        assert data.params["vf_realized"][i] == np.float32(params.vf_realized)
        centres = data.params["centres"][i]
        np.testing.assert_allclose(centres[: params.n_particles], params.centres, rtol=1e-6)
        assert np.isnan(centres[params.n_particles :]).all()


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path, catalogue, monkeypatch):
    reference = open_dataset(
        generate_dataset(
            tmp_path / "ref.zarr", 3, 8, 50, seed=1, workers=1, catalogue=catalogue, chunk_samples=8
        )
    )
    original, calls = generate.generate_chunk, []

    def killed_after_two_chunks(path, chunk, catalogue):
        calls.append(chunk)
        written = original(path, chunk, catalogue)
        if len(calls) == 3:  # the third chunk is written but never marked done
            raise KeyboardInterrupt
        return written

    monkeypatch.setattr(generate, "generate_chunk", killed_after_two_chunks)
    path = tmp_path / "d.zarr"
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(path, 3, 8, 50, seed=1, workers=1, catalogue=catalogue, chunk_samples=8)
    with pytest.raises(IncompleteDatasetError, match="incomplete \\(2 of 7 chunks"):
        open_dataset(path)
    monkeypatch.setattr(generate, "generate_chunk", original)
    generate_dataset(path, 3, 8, 50, seed=1, workers=1, catalogue=catalogue, chunk_samples=8)
    assert_same_store(open_dataset(path), reference)


def test_parallel_workers_give_the_same_store(tmp_path, catalogue):
    serial = generate_dataset(
        tmp_path / "a.zarr", 2, 12, 40, seed=2, workers=1, catalogue=catalogue, chunk_samples=10
    )
    parallel = generate_dataset(
        tmp_path / "b.zarr", 2, 12, 40, seed=2, workers=2, catalogue=catalogue, chunk_samples=10
    )
    assert_same_store(open_dataset(serial), open_dataset(parallel))


def test_other_parameters_on_existing_store_raise(tmp_path, catalogue):
    path = generate_dataset(tmp_path / "d.zarr", 2, 8, 10, seed=0, workers=1, catalogue=catalogue)
    with pytest.raises(ValueError, match="seed: store has 0, requested 1"):
        generate_dataset(path, 2, 8, 10, seed=1, workers=1, catalogue=catalogue)
    (tmp_path / "junk").mkdir()
    with pytest.raises(ValueError, match="not a matdiff dataset store"):
        generate_dataset(tmp_path / "junk", 2, 8, 10, seed=0, workers=1, catalogue=catalogue)


def test_bad_requests_raise(tmp_path, catalogue):
    with pytest.raises(FileNotFoundError, match="no dataset at"):
        open_dataset(tmp_path / "missing.zarr")
    for dim, size, n, seed, message in (
        (4, 8, 10, 0, "dim must be 2 or 3"),
        (2, 0, 10, 0, "size must be"),
        (2, 8, 0, 0, "n \\(number of samples\\) must be"),
        (2, 8, 10, -1, "seed must be"),
    ):
        with pytest.raises(ValueError, match=message):
            generate_dataset(tmp_path / "x.zarr", dim, size, n, seed=seed, workers=1, catalogue=catalogue)
    assert not (tmp_path / "x.zarr").exists()


def test_cli_generate_and_inspect(tmp_path):
    csv = tmp_path / "catalogue.csv"
    csv.write_bytes(catalogue_csv())
    app = typer.Typer()
    dataset_cli.register(app)
    runner = CliRunner()
    store, png = tmp_path / "d.zarr", tmp_path / "grid.png"
    common = ["--out", str(store), "--dim", "3", "--size", "8", "--seed", "0", "--catalogue", str(csv)]
    result = runner.invoke(app, ["dataset", "generate", "--n", "12", "--workers", "1", *common])
    assert result.exit_code == 0, result.output
    inspect = ["dataset", "inspect", str(store), "--png", str(png), "--catalogue", str(csv)]
    result = runner.invoke(app, inspect)
    assert result.exit_code == 0, result.output
    assert "samples written" in result.output and "12 of 12" in result.output
    assert "material chunks covered" in result.output
    assert png.read_bytes()[:4] == b"\x89PNG"
    result = runner.invoke(app, ["dataset", "generate", "--n", "13", "--workers", "1", *common])
    assert result.exit_code != 0 and "n: store has 12, requested 13" in result.output


def _children(pid: int) -> list[int]:
    """Live processes whose parent is pid (Linux /proc)."""
    from pathlib import Path

    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    """Whether pid is a live (not zombie) process."""
    from pathlib import Path

    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="reads /proc")
def test_workers_and_resource_tracker_end_when_the_generating_process_is_killed(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    script = (
        "from matdiff.dataset import generate_dataset\n"
        f"generate_dataset({str(tmp_path / 'd.zarr')!r}, 2, 64, 4096, 0, workers=2, chunk_samples=64)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 60
        while len(_children(parent.pid)) < 3 and time.monotonic() < deadline:  # 2 workers + resource tracker
            time.sleep(0.2)
        children = _children(parent.pid)
        assert len(children) >= 3, children
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [pid for pid in children if _alive(pid)]
    for pid in left:  # do not leave them running if the test fails
        os.kill(pid, signal.SIGKILL)
    assert not left
