"""Noise schedules match SPEC 4; parameterization algebra and our DDIM update agree with diffusers."""

import torch

from matdiff.diffusion import ddim_update, get_preset, make_scheduler
from matdiff.diffusion.schedule import add_noise, alphas_cumprod, training_target, x0_eps_from_output


def test_seed_a_schedule_zero_terminal_snr_and_trailing_spacing():
    config = get_preset("seedA-2d")["scheduler"]
    scheduler = make_scheduler(config, "ddim")
    assert scheduler.config.prediction_type == "v_prediction" and scheduler.config.clip_sample
    assert scheduler.alphas_cumprod[-1] == 0
    assert scheduler.alphas_cumprod[0] > 0.99
    scheduler.set_timesteps(50)
    assert scheduler.timesteps.tolist() == list(range(999, 0, -20))
    scheduler.set_timesteps(100)
    assert scheduler.timesteps[0] == 999 and scheduler.timesteps[-1] == 9
    assert make_scheduler(config, "ddpm").config.rescale_betas_zero_snr


def test_seed_b_schedule_ten_steps():
    config = get_preset("seedB")["scheduler"]
    scheduler = make_scheduler(config)
    assert scheduler.config.prediction_type == "epsilon" and scheduler.alphas_cumprod[-1] > 0
    scheduler.set_timesteps(10)
    assert scheduler.timesteps.tolist() == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]


def test_targets_invert_to_x0_and_noise():
    torch.manual_seed(0)
    x0, noise = torch.randn(4, 3, 4, 4), torch.randn(4, 3, 4, 4)
    t = torch.tensor([0, 10, 500, 999])
    for name in ("seedA-2d", "seedB"):
        config = get_preset(name)["scheduler"]
        abar, kind = alphas_cumprod(config), config["prediction_type"]
        x_t = add_noise(x0, noise, t, abar)
        x0_hat, eps_hat = x0_eps_from_output(training_target(x0, noise, t, abar, kind), x_t, t, abar, kind)
        assert torch.allclose(x0_hat, x0, atol=1e-4) and torch.allclose(eps_hat, noise, atol=1e-4)


def test_ddim_update_matches_diffusers_step():
    config = get_preset("seedA-2d")["scheduler"]
    scheduler = make_scheduler(config)
    scheduler.set_timesteps(10)
    abar = scheduler.alphas_cumprod
    torch.manual_seed(1)
    x, v = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    t, t_prev = 599, 499
    config_noclip = {**config, "clip_sample": False}
    ref = make_scheduler(config_noclip)
    ref.set_timesteps(10)
    expected = ref.step(v, t, x, eta=0.0).prev_sample
    x0, eps = x0_eps_from_output(v, x, torch.tensor([t, t]), abar, "v_prediction")
    ours = ddim_update(x0, eps, abar[t], abar[t_prev], 0.0, torch.zeros_like(x))
    assert torch.allclose(ours, expected, atol=1e-5)


class _OracleUNet(torch.nn.Module):
    """The exact v-prediction network for data concentrated at one field ``target`` (1, C, *S)."""

    def __init__(self, target: torch.Tensor, abar: torch.Tensor) -> None:
        super().__init__()
        self.target, self.abar = target, abar

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = self.abar[t].view(-1, *([1] * (x.ndim - 1)))
        eps = (x - a.sqrt() * self.target) / (1 - a).sqrt()
        return a.sqrt() * eps - (1 - a).sqrt() * self.target


def test_sampling_with_an_oracle_network_returns_the_data_point():
    from matdiff.diffusion import DiffusionModel

    preset = get_preset("seedA-2d")
    abar = alphas_cumprod(preset["scheduler"])
    target = torch.rand(1, 3, 4, 4) * 2 - 1
    config = {
        "unet": {},
        "scheduler": preset["scheduler"],
        "prediction_type": "v_prediction",
        "dim": 2,
        "size": 4,
        "channels": 3,
    }
    model = DiffusionModel(_OracleUNet(target, abar), config, device="cpu")
    for eta in (0.0, 1.0):
        x = model.sample(2, steps=10, eta=eta, generator=torch.Generator().manual_seed(0), progress=False)
        assert torch.allclose(x, target.expand(2, -1, -1, -1), atol=1e-4)
