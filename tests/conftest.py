"""Every test runs with one torch thread: the grids and networks in tests are tiny, and on a shared 2-core
machine torch's thread barriers made them ~10-30x slower (tests/fem: 136 s with 2 threads vs 10-25 s).
``tiny_model``: an untrained tiny-preset particle prior on 8x8 fields of the shipped catalogue;
``fem_fails_for_sample_1``: guidance's bulk-modulus solves fail for sample 1 (as when its retry fails too);
``fake_fem_curves``: differentiable stand-ins for the nonlinear FEM curves (noise-space design tests)."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _single_thread_session():
    """Build every fixture, module-scoped ones included, with torch.set_num_threads(1).

    A module fixture built under the default thread count would train or solve in other floating-point
    orders than the one-thread test that compares against it (a resumed run differed in the last bits)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _single_thread(_single_thread_session):
    """Run one test with one torch thread, restoring one thread after a test that changed it."""
    yield
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_model():
    """An untrained tiny-preset DiffusionModel of 3-channel 8x8 particle fields (seeded initialization)."""
    from matdiff.diffusion import untrained_model
    from matdiff.materials import load_catalogue

    return untrained_model("tiny", 8, catalogue_hash=load_catalogue().hash)


@pytest.fixture
def fem_fails_for_sample_1(monkeypatch):
    """Make guidance's bulk-modulus solve of sample 1 of every batch fail (NaN, residual 0.5, retried)."""
    from matdiff import fem
    from matdiff.guidance.objectives import FEM_QUANTITIES

    def fails_for_sample_1(E, nu, **kwargs):
        value, status = fem.bulk_modulus(E, nu, **kwargs)
        failed = torch.arange(len(value)) == 1
        status = fem.SolveStatus(status.converged & ~failed, status.residual.masked_fill(failed, 0.5), failed)
        return value.masked_fill(failed, float("nan")), status

    monkeypatch.setitem(FEM_QUANTITIES, "bulk_modulus", fails_for_sample_1)


class FakeFemCurves:
    """Differentiable stand-ins for ``fem.strain_energy_curve`` and ``fem.stress_displacement_curve`` with
    their contract: fields (B, H, W), row 0 the top edge, -> (B, n); ``return_result=True`` gives an object
    with ``.values``, a nodal ``.displacement`` (B, 2, H+1, W+1) at the last step and a ``.status`` whose
    ``reasons()`` are all "". ``calls`` logs the fields of every call (a dict of tensors per call)."""

    def __init__(self):
        self.calls: list[dict[str, torch.Tensor]] = []

    @staticmethod
    def stiffness(E: torch.Tensor, nu: torch.Tensor) -> torch.Tensor:
        """(B,) series (rows) / parallel (columns) mixing of E / (1 - nu^2)."""
        return 1.0 / (1.0 / (E / (1 - nu**2)).mean(dim=2)).mean(dim=1)

    @staticmethod
    def result(values: torch.Tensor, shape: torch.Size, d_last: float):
        """The return_result object: values, top-to-bottom linear u_y reaching d_last at row 0, a status."""
        from types import SimpleNamespace

        B, H, W = shape
        u = torch.zeros(B, 2, H + 1, W + 1, dtype=values.dtype)
        u[:, 1] = d_last * torch.linspace(1, 0, H + 1, dtype=values.dtype).view(1, H + 1, 1)
        status = SimpleNamespace(converged=torch.ones(B, dtype=torch.bool), reasons=lambda: [""] * B)
        return SimpleNamespace(values=values, displacement=u, status=status)

    def strain_energy_curve(self, E, nu, displacements, *, options=None, return_result=False):
        """k d^2 / 2 + k^0.5 d^3 / 10 per displacement d, k the mixed stiffness."""
        self.calls.append({"E": E.detach().clone(), "nu": nu.detach().clone()})
        d = torch.tensor(displacements, dtype=E.dtype)
        k = self.stiffness(E, nu)[:, None]
        values = k * d**2 / 2 + k.sqrt() * d**3 / 10
        return self.result(values, E.shape, displacements[-1]) if return_result else values

    def stress_displacement_curve(self, E, nu, sigma_0, displacements, *, options=None, return_result=False):
        """s tanh(k d / s) per displacement d, s = 2 / sqrt(3) mean(sigma_0), k the mixed stiffness."""
        self.calls.append(
            {"E": E.detach().clone(), "nu": nu.detach().clone(), "sigma_0": sigma_0.detach().clone()}
        )
        d = torch.tensor(displacements, dtype=E.dtype)
        s = (2 / 3**0.5 * sigma_0.mean(dim=(1, 2)))[:, None]
        values = s * torch.tanh(self.stiffness(E, nu)[:, None] * d / s)
        return self.result(values, E.shape, displacements[-1]) if return_result else values


@pytest.fixture
def fake_fem_curves(monkeypatch):
    """``FakeFemCurves`` put in ``matdiff.fem`` in place of the nonlinear FEM curves (for CLI runs)."""
    from matdiff import fem

    fake = FakeFemCurves()
    monkeypatch.setattr(fem, "strain_energy_curve", fake.strain_energy_curve, raising=False)
    monkeypatch.setattr(fem, "stress_displacement_curve", fake.stress_displacement_curve, raising=False)
    return fake
