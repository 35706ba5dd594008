"""Network building blocks (default EfficientNet-Lite0 config, small inputs)."""

from __future__ import annotations

import pytest
import torch

from napari_ipnet.model.backbones import IMAGENET_MEAN, IMAGENET_STD, FrozenBatchNorm2d
from napari_ipnet.model.blocks import ResBlock, upsample
from napari_ipnet.model.networks import ModelConfig, ReferenceFusion, build_model


def test_upsample_uses_align_corners_true():
    x = torch.tensor([[[[0.0, 1.0]]]])
    # corners aligned: 0, 0.5, 1 (align_corners=False would give 0, 0.5, 1 only by chance for 3 -> test 4)
    out = upsample(x, size=(1, 4))
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([0.0, 1 / 3, 2 / 3, 1.0]))


def test_networks_shapes_and_outputs(lite_model):
    s = 64
    rgb = torch.rand(1, 3, s, s)
    maps = [torch.rand(1, 1, s, s) for _ in range(3)]
    with torch.inference_mode():
        out = lite_model.interaction(rgb, *maps)
        assert out.logits.shape == (1, 2, s, s)
        assert out.feature.shape == (1, 320, s // 32, s // 32)
        assert [a.shape[-1] for a in out.aux] == [s // 32, s // 16, s // 8]
        assert torch.isfinite(out.logits).all()
        fused = lite_model.propagation.SEFA(out.feature, None)
        assert fused is out.feature  # first round: the current reference as is
        out2 = lite_model.propagation(rgb, maps[0], maps[1], fused)
        assert out2.logits.shape == (1, 2, s, s) and torch.isfinite(out2.logits).all()
    # wrong number of extra maps is a clear error
    with pytest.raises(ValueError, match="expected 3 extra maps"), torch.inference_mode():
        lite_model.interaction.Encoder(rgb, maps[0])


def test_extra_inputs_change_the_output(lite_model):
    rgb = torch.rand(1, 3, 64, 64)
    zero = torch.zeros(1, 1, 64, 64)
    pos = zero.clone()
    pos[..., 20:40, 20:40] = 1
    with torch.inference_mode():
        a = lite_model.interaction(rgb, zero, zero, zero).logits
        b = lite_model.interaction(rgb, zero, pos, zero).logits
    assert not torch.allclose(a, b)


def test_encoder_buffers_and_stem_bias():
    model = build_model()
    for net in (model.interaction, model.propagation):
        enc = net.Encoder
        assert enc.mean.shape == (1, 3, 1, 1) and enc.std.shape == (1, 3, 1, 1)
        torch.testing.assert_close(enc.mean.flatten(), torch.tensor(IMAGENET_MEAN))
        torch.testing.assert_close(enc.std.flatten(), torch.tensor(IMAGENET_STD))
        assert enc.conv1_m.bias is not None  # mask conv has a bias
    assert model.interaction.Encoder.conv1_p.bias is None
    assert model.interaction.Encoder.conv1_n.bias is None
    assert model.propagation.Encoder.conv1_x.bias is None


def test_frozen_batchnorm_stays_in_eval_mode():
    bn = FrozenBatchNorm2d(4)
    bn.running_mean.fill_(1.0)
    bn.train()
    assert not bn.training
    x = torch.randn(8, 4, 5, 5) * 3 + 7
    bn(x)
    assert torch.equal(bn.running_mean, torch.ones(4))
    model = build_model()
    model.train()
    assert not any(m.training for m in model.modules() if isinstance(m, FrozenBatchNorm2d))


def test_resblock_skip_and_downsample():
    same = ResBlock(8, 8)
    assert same.downsample is None
    for p in (same.conv2.weight, same.conv2.bias):
        torch.nn.init.zeros_(p)
    x = torch.randn(1, 8, 6, 6)
    torch.testing.assert_close(same(x), x)  # residual branch zero -> identity
    down = ResBlock(8, 4)
    assert down.downsample.kernel_size == (3, 3) and down.downsample.bias is not None
    assert down(x).shape == (1, 4, 6, 6)


def test_reference_fusion_pairs_outputs_2c_and_2c_plus_1():
    c = 4
    fusion = ReferenceFusion(c)
    torch.nn.init.zeros_(fusion.fc2.weight)
    with torch.no_grad():
        # channel 0 prefers the previous reference, the others the current one
        fusion.fc2.bias.copy_(torch.tensor([-20.0, 20.0, 20.0, -20.0, 20.0, -20.0, 20.0, -20.0]))
    current = torch.full((1, c, 3, 3), 1.0)
    previous = torch.full((1, c, 3, 3), 5.0)
    out = fusion(current, previous)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([5.0, 1.0, 1.0, 1.0]))
    # equal weights: the mean
    torch.nn.init.zeros_(fusion.fc2.bias)
    torch.testing.assert_close(fusion(current, previous), torch.full((1, c, 3, 3), 3.0))


def test_model_config_round_trip():
    cfg = ModelConfig.paper()
    assert cfg.encoder == "resnet50" and cfg.decoder_channels == 256 and cfg.decoder_mid_channels == 1024
    assert ModelConfig(**cfg.to_dict()) == cfg
    assert ModelConfig().encoder == "efficientnet_lite0"


def _randomise_batchnorms(net: torch.nn.Module, seed: int) -> None:
    """Give every BatchNorm statistics and an affine map far from the identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, FrozenBatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g))
                m.running_mean.copy_(torch.randn(n, generator=g))
                m.running_var.copy_(torch.rand(n, generator=g) + 0.1)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_inference_folds_batchnorm_into_the_convolutions(layout):
    """Without autograd the encoder runs with its BatchNorms folded into the
    convolutions: the same features as the autograd path, in either memory layout,
    and made again after the weights change."""
    net = build_model().propagation.to(memory_format=layout)
    _randomise_batchnorms(net, 0)
    g = torch.Generator().manual_seed(1)
    x = [torch.rand(2, 3, 64, 64, generator=g), torch.rand(2, 1, 64, 64, generator=g),
         torch.rand(2, 1, 64, 64, generator=g)]

    def both():
        with torch.enable_grad():
            slow = [t.detach() for t in net.Encoder(*x)]
        with torch.inference_mode():
            fast = net.Encoder(*x)
        return slow, fast

    slow, fast = both()
    for a, b in zip(slow, fast):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)
    # new weights (as load_state_dict copies them in): the folded weights follow
    _randomise_batchnorms(net, 2)
    slow2, fast2 = both()
    assert not torch.allclose(slow[0], slow2[0], atol=1e-3)
    for a, b in zip(slow2, fast2):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)


def test_a_model_made_in_inference_mode_runs():
    """Parameters made under ``torch.inference_mode`` keep no version counter: the
    folded weights are still made and used."""
    with torch.inference_mode():
        net = build_model().propagation
        x = [torch.rand(1, 3, 64, 64), torch.rand(1, 1, 64, 64), torch.rand(1, 1, 64, 64)]
        a = net.Encoder(*x)[0]
        b = net.Encoder(*x)[0]
    assert torch.equal(a, b)
