"""Noise schedules (diffusers schedulers) and the parameterization algebra; nothing here knows the network.

Timestep convention: integer t in 0..T-1 (T = 1000), x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps with
a_t = alphas_cumprod[t]; t = 0 is almost clean, t = T-1 is pure noise (a = 0 under zero terminal SNR).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from diffusers import DDIMScheduler, DDPMScheduler

SCHEDULERS = {"ddim": DDIMScheduler, "ddpm": DDPMScheduler}


def make_scheduler(config: dict[str, Any], kind: str = "ddim") -> DDIMScheduler | DDPMScheduler:
    """A fresh diffusers scheduler of ``kind`` ("ddim" or "ddpm") built from a scheduler config dict."""
    if kind not in SCHEDULERS:
        raise ValueError(f"unknown scheduler kind {kind!r}; choose one of {sorted(SCHEDULERS)}")
    cls = SCHEDULERS[kind]
    keys = set(inspect.signature(cls.__init__).parameters) - {"self"}
    return cls(**{k: v for k, v in config.items() if k in keys})


def alphas_cumprod(config: dict[str, Any]) -> torch.Tensor:
    """(T,) float32 cumulative products of alphas of the schedule in ``config``."""
    return make_scheduler(config, "ddpm").alphas_cumprod.to(torch.float32)


def _coefficients(
    abar: torch.Tensor, t: torch.Tensor, like: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """sqrt(a_t), sqrt(1 - a_t) for t (B,), shaped (B, 1, ..., 1) to broadcast against ``like``."""
    a = abar.to(like.device)[t.to(like.device).long()].to(like.dtype)
    shape = (-1,) + (1,) * (like.ndim - 1)
    return a.sqrt().reshape(shape), (1 - a).sqrt().reshape(shape)


def x0_eps_from_output(
    output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, abar: torch.Tensor, prediction_type: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0_hat, eps_hat), each shaped like x_t, from the network output under ``prediction_type``.

    Differentiable w.r.t. output and x_t. For "epsilon" at a_t = 0 x0 is undefined (division by zero);
    zero-terminal-SNR schedules should use "v_prediction".
    """
    s, r = _coefficients(abar, t, x_t)
    if prediction_type == "v_prediction":
        return s * x_t - r * output, s * output + r * x_t
    if prediction_type == "epsilon":
        return (x_t - r * output) / s, output
    if prediction_type == "sample":
        return output, (x_t - s * output) / r
    raise ValueError(f"unknown prediction_type {prediction_type!r}")


def training_target(
    x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, abar: torch.Tensor, prediction_type: str
) -> torch.Tensor:
    """The regression target (shaped like x0) for the network at (x0, noise, t)."""
    s, r = _coefficients(abar, t, x0)
    if prediction_type == "v_prediction":
        return s * noise - r * x0
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "sample":
        return x0
    raise ValueError(f"unknown prediction_type {prediction_type!r}")


def signal_to_noise(abar: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """SNR a_t / (1 - a_t) (B,) float32 at integer timesteps t (B,); 0 at a zero-terminal-SNR last step."""
    a = abar.to(t.device)[t.long()].float()
    return a / (1 - a).clamp_min(1e-12)


def loss_weights(
    abar: torch.Tensor, t: torch.Tensor, prediction_type: str, min_snr_gamma: float | None
) -> torch.Tensor:
    """Per-sample weights (B,) of the squared error on the network output at timesteps t (B,).

    None or 0: uniform (1). Otherwise Min-SNR-gamma (Hang et al. 2023): the implied x0 loss is weighted by
    min(SNR, gamma), i.e. the output loss by min(SNR, gamma) / SNR for epsilon, / (SNR + 1) for v and by
    min(SNR, gamma) for x0 targets. At SNR = 0 (the zero-terminal-SNR step) the weight is 1, as in
    diffusers' training scripts, so that the pure-noise step is still learned.
    """
    if not min_snr_gamma:
        return torch.ones(t.shape, device=t.device)
    snr = signal_to_noise(abar, t)
    clipped = torch.minimum(snr, torch.full_like(snr, float(min_snr_gamma)))
    if prediction_type == "v_prediction":
        weights = clipped / (snr + 1)
    elif prediction_type == "epsilon":
        weights = clipped / snr.clamp_min(1e-12)
    elif prediction_type == "sample":
        weights = clipped
    else:
        raise ValueError(f"unknown prediction_type {prediction_type!r}")
    return torch.where(snr == 0, torch.ones_like(weights), weights)


def add_noise(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(a_t) x0 + sqrt(1 - a_t) noise, shaped like x0."""
    s, r = _coefficients(abar, t, x0)
    return s * x0 + r * noise


def ddim_update(
    x0: torch.Tensor,
    eps: torch.Tensor,
    a_t: torch.Tensor,
    a_prev: torch.Tensor,
    eta: float,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """One DDIM step (Song et al. 2021, eq. 12): x_{t_prev} from (x0_hat, eps_hat), shaped like x0.

    ``a_t``, ``a_prev`` are the scalar alphas_cumprod at t and at the previous (smaller) timestep (1 past the
    end); eta = 0 is deterministic DDIM, eta = 1 strided DDPM; ``noise`` ~ N(0, I) shaped like x0 (may be
    None when eta = 0). The direction coefficient sqrt(1 - a_prev - sigma^2) is clamped at 0 (rounding makes
    it negative at a zero-SNR first step with eta = 1).
    """
    a_t, a_prev = torch.as_tensor(a_t, dtype=torch.float64), torch.as_tensor(a_prev, dtype=torch.float64)
    variance = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
    sigma = eta * variance.clamp_min(0).sqrt()
    direction = (1 - a_prev - sigma**2).clamp_min(0).sqrt()
    c0, c1, c2 = (float(v) for v in (a_prev.sqrt(), direction, sigma))
    out = c0 * x0 + c1 * eps
    return out + c2 * noise if c2 > 0 else out
