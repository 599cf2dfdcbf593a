"""Named model presets: UNet config, noise-schedule config and training defaults (SPEC 4).

A preset is plain JSON-able data; a trained checkpoint stores the resolved copy in its config.json, so a
later change here never changes how a saved model loads.
"""

from __future__ import annotations

import copy
from typing import Any

#: Seed A (SPEC 4): T = 1000, linear betas 1e-4..0.02 (chosen: diffusers' default, the seed's are lost),
#: zero terminal SNR, v-prediction, DDIM with trailing spacing, x0 clipped to [-1, 1].
SEED_A_SCHEDULER: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 1e-4,
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "rescale_betas_zero_snr": True,
    "prediction_type": "v_prediction",
    "timestep_spacing": "trailing",
    "clip_sample": True,
    "clip_sample_range": 1.0,
    "set_alpha_to_one": True,
    "steps_offset": 0,
}

#: Seed B (genopt): epsilon-prediction, linear 1e-4..0.02, no rescaling; trailing spacing gives the
#: 10 DDIM steps t = 999, 899, ..., 99. x0 clipping to [-1, 1] is **chosen** (images live in [-1, 1]).
SEED_B_SCHEDULER: dict[str, Any] = {
    **SEED_A_SCHEDULER,
    "rescale_betas_zero_snr": False,
    "prediction_type": "epsilon",
}

_SEED_A_UNET: dict[str, Any] = {
    "in_channels": 3,
    "stem_channels": 8,
    "stem_kernel": 1,
    "block_channels": [32, 64],
    "layers_per_block": 2,
    "attention_levels": [False, False],
    "downsample_last": True,
    "mid_channels": [128, 128, 64],
    "attention_heads": 16,
    "norm_groups": 8,
    "time_embed_dim": 16,
    "time_hidden_dim": 32,
    "fourier_scale": 1.0,
    "num_train_timesteps": 1000,
    "dropout": 0.0,
}

#: Seed A (SPEC 4): AdamW, 5,000 warm-up steps, peak lr 1e-3, batch 128, 100,000 steps, EMA.
_SEED_A_TRAINING: dict[str, Any] = {"steps": 100_000, "batch": 128, "lr": 1e-3, "warmup": 5_000, "ema": 0.999}

#: matdiff's own 2D recipe (issue 23), chosen by the side-by-side CPU comparison in docs/benchmarks.md
#: ("Prior training recipes"): seed A's UNet blocks, but on 2x2 patches (space-to-depth, as DiT), so the
#: network runs at 32x32 for 64x64 fields (~5x less CPU per sample), with a third level (32, 64, 128) and the
#: mid block at 4x4; random grid symmetries of every sample; bfloat16 autocast (~1.7x). Two phases: this
#: preset's Min-SNR-5 weights draw sharp two-phase fields soonest (R 0.83 after 37 CPU-minutes, uniform
#: weights 0.51), but they divide the weight of the noise levels where a field's materials are chosen (log-SNR
#: -9 .. -5) by 10^2 .. 10^4, and the materials stay shrunk toward the catalogue's middle (contrast ~0.75);
#: a second phase with seed A's uniform v-loss (`matdiff train --init-from RUN --min-snr-gamma 0 --lr 5e-4
#: --warmup 200 --steps 8000`) brings the contrast to >= 0.8 at the same two-phase-ness.
_MATDIFF_2D_UNET: dict[str, Any] = {
    **_SEED_A_UNET,
    "patch_size": 2,
    "stem_channels": 32,
    "block_channels": [32, 64, 128],
    "attention_levels": [False, False, False],
    "mid_channels": [128, 128, 128],
}
_MATDIFF_TRAINING: dict[str, Any] = {
    "steps": 40_000,
    "batch": 32,
    "lr": 1e-3,
    "warmup": 500,
    "ema": 0.999,
    "min_snr_gamma": 5.0,
    "augment": True,
    "precision": "bf16",
}

PRESETS: dict[str, dict[str, Any]] = {
    "matdiff-2d": {
        "unet": {"spatial_dims": 2, **_MATDIFF_2D_UNET},
        "scheduler": SEED_A_SCHEDULER,
        "training": _MATDIFF_TRAINING,
    },
    "seedA-2d": {
        "unet": {"spatial_dims": 2, **_SEED_A_UNET},
        "scheduler": SEED_A_SCHEDULER,
        "training": _SEED_A_TRAINING,
    },
    "seedA-3d": {
        "unet": {"spatial_dims": 3, **_SEED_A_UNET},
        "scheduler": SEED_A_SCHEDULER,
        "training": _SEED_A_TRAINING,
    },
    # Seed B (SPEC 4): width 48, multipliers (1, 2, 2, 2), 2 res blocks per level, attention at 16x16 (level 1
    # of a 32x32 input) and in the middle, 1 channel. Chosen where genopt's DDPM UNet differs from our one
    # definition: 3x3 stem, average pooling, Fourier time embedding 48 -> 192, 4 heads, dropout 0.1, no
    # extra stem skip; the last level does not pool (mid block at 4x4 for 32x32 inputs).
    "seedB": {
        "unet": {
            "spatial_dims": 2,
            "in_channels": 1,
            "stem_channels": 48,
            "stem_kernel": 3,
            "block_channels": [48, 96, 96, 96],
            "layers_per_block": 2,
            "attention_levels": [False, True, False, False],
            "downsample_last": False,
            "mid_channels": [96, 96],
            "attention_heads": 4,
            "norm_groups": 8,
            "time_embed_dim": 48,
            "time_hidden_dim": 192,
            "fourier_scale": 1.0,
            "num_train_timesteps": 1000,
            "dropout": 0.1,
        },
        "scheduler": SEED_B_SCHEDULER,
        "training": {"steps": 4_000, "batch": 128, "lr": 2e-4, "warmup": 200, "ema": 0.999},
    },
    # For tests: a few thousand parameters, same code paths (attention at level 1 and in the middle).
    "tiny": {
        "unet": {
            "spatial_dims": 2,
            "in_channels": 3,
            "stem_channels": 4,
            "stem_kernel": 1,
            "block_channels": [8, 16],
            "layers_per_block": 1,
            "attention_levels": [False, True],
            "downsample_last": True,
            "mid_channels": [16, 16],
            "attention_heads": 2,
            "norm_groups": 4,
            "time_embed_dim": 8,
            "time_hidden_dim": 16,
            "fourier_scale": 1.0,
            "num_train_timesteps": 1000,
            "dropout": 0.0,
        },
        "scheduler": SEED_A_SCHEDULER,
        "training": {"steps": 20, "batch": 4, "lr": 1e-3, "warmup": 0, "ema": 0.9},
    },
}


def get_preset(name: str) -> dict[str, Any]:
    """A deep copy of preset ``name`` ({"unet", "scheduler", "training"}); raises KeyError listing names."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def width_overrides(name: str, width: int) -> dict[str, Any]:
    """UNet overrides that rescale preset ``name`` to stem width ``width``, keeping its channel multipliers.

    Every channel count (stem, blocks, mid block, time embedding) is scaled by width / preset stem width;
    e.g. seedB at width 32 gives blocks (32, 64, 64, 64). Pass the result as ``train(unet_overrides=...)``.
    """
    unet = get_preset(name)["unet"]
    if width < 1 or width % unet["norm_groups"]:
        raise ValueError(
            f"width must be a positive multiple of the {unet['norm_groups']} norm groups, got {width}"
        )
    scale = width / unet["stem_channels"]

    def scaled(channels: int) -> int:
        return max(1, round(channels * scale))

    return {
        "stem_channels": width,
        "block_channels": [scaled(c) for c in unet["block_channels"]],
        "mid_channels": [scaled(c) for c in unet["mid_channels"]],
        "time_embed_dim": scaled(unet["time_embed_dim"]),
        "time_hidden_dim": scaled(unet["time_hidden_dim"]),
    }
