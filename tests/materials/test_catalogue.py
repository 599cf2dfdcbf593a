"""Tests of the shipped material catalogue, its loader and validation, normalization, chunks and CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from matdiff.materials import Catalogue, chunk_index, load_catalogue

HEADER = "name,class,E_GPa,nu,rho_g_cm3,source\n"
GOOD_ROWS = "Steel,metal,200,0.3,7.85,test\nEpoxy,polymer,3,0.35,1.2,test\n"


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    """The shipped catalogue."""
    return load_catalogue()


def test_shipped_catalogue_is_large_distinct_and_in_box(cat: Catalogue) -> None:
    assert len(cat) >= 250
    assert len(set(cat.names)) == len(cat)
    assert len({tuple(p) for p in cat.props}) == len(cat)
    assert np.all((cat.E > 0) & (cat.E <= 500))
    assert np.all((cat.nu > 0) & (cat.nu < 0.5))
    assert np.all((cat.rho > 0) & (cat.rho <= 10))
    assert all(cat.sources) and all(cat.classes)


def test_shipped_catalogue_covers_many_chunks(cat: Catalogue) -> None:
    assert len(cat.nonempty_chunks) >= 100
    assert np.array_equal(cat.nonempty_chunks, np.unique(cat.chunks))
    assert cat.chunks.shape == (len(cat),)


def test_shapes_and_cache(cat: Catalogue) -> None:
    assert cat.props.shape == (len(cat), 3) and cat.props.dtype == np.float64
    assert np.array_equal(cat.lo, cat.props.min(0)) and np.array_equal(cat.hi, cat.props.max(0))
    assert load_catalogue() is cat
    assert len(cat.hash) == 64


def test_normalize_round_trip_numpy(cat: Catalogue) -> None:
    x = cat.normalize(cat.props)
    assert np.allclose(x.min(0), -1) and np.allclose(x.max(0), 1)
    assert np.allclose(cat.denormalize(x), cat.props)


def test_normalize_round_trip_torch_keeps_dtype_and_grad(cat: Catalogue) -> None:
    x = (torch.rand(2, 5, 3, dtype=torch.float32) * 2 - 1).requires_grad_()
    props = cat.denormalize(x)
    assert isinstance(props, torch.Tensor) and props.dtype == torch.float32
    assert torch.allclose(cat.normalize(props), x, atol=1e-5)
    props[..., 0].sum().backward()
    expected = (cat.hi[0] - cat.lo[0]) / 2
    assert torch.allclose(x.grad[..., 0], torch.full((2, 5), expected, dtype=torch.float32))
    assert torch.all(x.grad[..., 1:] == 0)


def test_nearest_of_catalogue_rows_is_identity(cat: Catalogue) -> None:
    x = cat.normalize(cat.props)
    assert np.array_equal(cat.nearest(x), np.arange(len(cat)))
    rows = torch.tensor([0, 7, len(cat) - 1])
    found = cat.nearest(torch.as_tensor(x[rows.numpy()], dtype=torch.float32).reshape(3, 1, 3))
    assert found.shape == (3, 1) and torch.equal(found[:, 0], rows)


def test_nearest_agrees_with_a_brute_force_distance_table(cat: Catalogue) -> None:
    points = np.random.default_rng(0).uniform(-1.1, 1.1, size=(2000, 3))
    table = cat.normalize(cat.props)
    dist = ((points[:, None, :] - table[None]) ** 2).sum(-1)
    found = cat.nearest(points)
    assert np.allclose(dist[np.arange(len(points)), found], dist.min(axis=1), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("props", "chunk"),
    [
        ((0.0, 0.0, 0.0), 0),
        ((500.0, 0.5, 10.0), 999),
        ((50.0, 0.05, 1.0), 111),
        ((49.9, 0.049, 0.99), 0),
        ((205.0, 0.29, 7.85), 457),
        ((100.0, 0.3, 7.0), 267),
        ((3.0, 0.35, 1.2), 71),
        ((0.002, 0.499, 0.93), 90),
    ],
)
def test_chunk_index_hand_made_points(props: tuple[float, float, float], chunk: int) -> None:
    assert int(chunk_index(np.array(props))) == chunk
    assert int(chunk_index(torch.tensor(props, dtype=torch.float64))) == chunk


def test_chunk_index_batched_shape() -> None:
    assert chunk_index(np.zeros((4, 2, 3))).shape == (4, 2)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (GOOD_ROWS + "Tungsten,metal,411,0.28,19.25,test\n", r"line 4 \('Tungsten'\).*rho_g_cm3"),
        (GOOD_ROWS + "Jelly,polymer,nan,0.3,1.0,test\n", r"line 4 \('Jelly'\).*E_GPa.*not finite"),
        (GOOD_ROWS + "Odd,polymer,1,0.5,1.0,test\n", r"line 4 \('Odd'\).*nu"),
        (GOOD_ROWS + "Steel,metal,210,0.3,7.8,test\n", r"line 4 \('Steel'\).*duplicate name.*line 2"),
        (GOOD_ROWS + "Blank,metal,abc,0.3,7.8,test\n", r"line 4 \('Blank'\).*not a number"),
    ],
)
def test_bad_rows_raise_naming_the_row(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + body)
    with pytest.raises(ValueError, match=message):
        load_catalogue(path)


def test_missing_column_raises(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("name,class,E_GPa,nu,source\nSteel,metal,200,0.3,test\n")
    with pytest.raises(ValueError, match="rho_g_cm3"):
        load_catalogue(path)


@pytest.mark.parametrize(
    ("rows", "constant"),
    [("Steel,metal,200,0.3,7.8,test\n", "E_GPa, nu, rho_g_cm3"), (GOOD_ROWS.replace("0.35", "0.3"), "nu")],
)
def test_a_property_with_one_value_is_refused(tmp_path: Path, rows: str, constant: str) -> None:
    path = tmp_path / "flat.csv"
    path.write_text(HEADER + rows)
    with pytest.raises(ValueError, match=f"one value of {constant} for all"):
        load_catalogue(path)


def test_loads_a_custom_file(tmp_path: Path) -> None:
    path = tmp_path / "good.csv"
    path.write_text(HEADER + GOOD_ROWS)
    cat = load_catalogue(str(path))
    assert cat.names == ["Steel", "Epoxy"] and cat.chunks.tolist() == [467, 71]


def test_cli_materials_plot_writes_png(tmp_path: Path) -> None:
    from matdiff.cli.app import app

    png = tmp_path / "catalogue.png"
    result = CliRunner().invoke(app, ["materials", "--plot", str(png)])
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "non-empty" in result.output
