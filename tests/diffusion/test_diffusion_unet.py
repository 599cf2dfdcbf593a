"""UNet: shapes in 2D and 3D, finite time embedding at t = 0, seed A layout, differentiability."""

import pytest
import torch

from matdiff.diffusion import UNet, get_preset
from matdiff.diffusion.unet import FourierTimeEmbedding


@pytest.mark.parametrize("dims,shape", [(2, (2, 3, 8, 8)), (3, (2, 3, 8, 8, 8)), (2, (3, 1, 16, 8))])
def test_tiny_unet_keeps_shape(dims, shape):
    unet = UNet(**{**get_preset("tiny")["unet"], "spatial_dims": dims, "in_channels": shape[1]})
    out = unet(torch.randn(shape), torch.tensor([0, 999, 3][: shape[0]]))
    assert out.shape == shape
    assert torch.isfinite(out).all()


def test_scalar_timestep_broadcasts_and_bad_sizes_fail():
    unet = UNet(**get_preset("tiny")["unet"])
    x = torch.randn(2, 3, 8, 8)
    assert unet(x, 7).shape == x.shape
    with pytest.raises(ValueError, match="divisible"):
        unet(torch.randn(1, 3, 6, 6), 0)


def test_fourier_embedding_is_finite_at_zero():
    emb = FourierTimeEmbedding(16)(torch.tensor([0, 1, 999]))
    assert emb.shape == (3, 16) and torch.isfinite(emb).all()
    assert torch.allclose(emb[0, 8:], torch.ones(8))  # cos(0) = 1


def test_seed_a_layout_matches_appendix_c():
    unet = UNet(**get_preset("seedA-2d")["unet"])
    assert unet.stem.kernel_size == (1, 1) and unet.stem.out_channels == 8
    assert [layer[0].conv2.out_channels for level in unet.down for layer in level] == [32, 32, 64, 64]
    assert [r.conv2.out_channels for r in unet.mid_res] == [128, 128, 64]
    assert [a.heads for a in unet.mid_attn] == [16, 16]
    assert unet.time_embed[1].out_features == 32 and unet.time_embed[0].weight.numel() == 8
    assert unet.head[-1].in_channels == 8 and unet.head[-1].out_channels == 3
    unet3 = UNet(**get_preset("seedA-3d")["unet"])
    assert unet3.stem.kernel_size == (1, 1, 1)
    assert sum(p.numel() for p in unet3.parameters()) > sum(p.numel() for p in unet.parameters())


def test_seed_b_preset_is_one_channel_epsilon():
    preset = get_preset("seedB")
    unet = UNet(**preset["unet"])
    assert unet.config["in_channels"] == 1 and unet.config["block_channels"] == [48, 96, 96, 96]
    assert unet.pools == [True, True, True, False]
    assert preset["scheduler"]["prediction_type"] == "epsilon"


def test_output_is_differentiable_in_input():
    unet = UNet(**get_preset("tiny")["unet"])
    x = torch.randn(1, 3, 8, 8, requires_grad=True)
    (g,) = torch.autograd.grad(unet(x, 10).square().sum(), x)
    assert g.shape == x.shape and g.abs().sum() > 0


def test_width_overrides_keep_multipliers_and_build():
    from matdiff.diffusion.presets import width_overrides

    seed_b = width_overrides("seedB", 32)
    assert seed_b["block_channels"] == [32, 64, 64, 64] and seed_b["mid_channels"] == [64, 64]
    assert width_overrides("seedB", 48)["block_channels"] == get_preset("seedB")["unet"]["block_channels"]
    UNet(**{**get_preset("tiny")["unet"], **width_overrides("tiny", 8)})
    with pytest.raises(ValueError, match="norm groups"):
        width_overrides("seedB", 30)
