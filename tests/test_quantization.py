"""Tests for llmzero.models.quantization: quantizers, their error bounds, pruning masks."""

import pytest
import torch
from torch import nn

from llmzero.models import quantization as qz


def _weight(rows: int = 16, columns: int = 64, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(rows, columns, generator=generator) * 0.05


@pytest.mark.parametrize("scheme", qz.SCHEMES)
@pytest.mark.parametrize("granularity", qz.GRANULARITIES)
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_round_trip_error_is_at_most_half_a_step(scheme, granularity, bits):
    weight = _weight() + 0.02  # an offset, so groups are not centred on zero
    quantized = qz.quantize(weight, bits, scheme, granularity, group_size=16)
    error = (qz.dequantize(quantized) - weight).reshape(quantized.codes.shape).abs()
    assert (error <= quantized.scale / 2 * (1 + 1e-4)).all()  # up to float32 rounding


@pytest.mark.parametrize("scheme", qz.SCHEMES)
def test_codes_stay_in_the_integer_range(scheme):
    quantized = qz.quantize(_weight(), 4, scheme, "group", group_size=32)
    low, high = (-7, 7) if scheme == "absmax" else (0, 15)
    assert int(quantized.codes.min()) >= low and int(quantized.codes.max()) <= high


def test_absmax_maps_zero_to_zero_and_the_extreme_to_the_last_code():
    weight = torch.tensor([[0.0, -1.0, 0.5, 0.25]])
    quantized = qz.quantize(weight, 8, "absmax", "tensor")
    assert quantized.codes.flatten().tolist() == [0, -127, 64, 32]
    assert torch.isclose(quantized.scale.flatten()[0], torch.tensor(1 / 127))


def test_granularity_sets_how_many_weights_share_a_scale():
    weight = _weight(8, 64)
    assert qz.quantize(weight, granularity="tensor").scale.numel() == 1
    assert qz.quantize(weight, granularity="channel").scale.numel() == 8
    assert qz.quantize(weight, granularity="group", group_size=16).scale.numel() == 32


def test_finer_granularity_gives_smaller_error_on_rows_of_different_scales():
    weight = _weight(8, 64) * torch.logspace(-2, 0, 8)[:, None]  # rows of very different size
    errors = [
        (qz.fake_quantize(weight, 4, "absmax", g, group_size=16) - weight).abs().mean()
        for g in ("tensor", "channel", "group")
    ]
    assert errors[0] > errors[1] > errors[2]


@pytest.mark.parametrize("bits", [4, 8])
def test_fake_quantize_equals_torch_fake_quantize_per_channel_affine(bits):
    weight = _weight()
    quantized = qz.quantize(weight, bits, "zeropoint", "channel")
    expected = torch.fake_quantize_per_channel_affine(
        weight,
        quantized.scale.flatten(),
        quantized.zero_point.flatten().int(),
        0,
        0,
        2**bits - 1,
    )
    ours = qz.fake_quantize(weight, bits, "zeropoint", "channel")
    assert torch.allclose(ours, expected, atol=1e-7)


def test_absmax_per_tensor_equals_torch_fake_quantize_per_tensor_affine():
    weight = _weight()
    scale = float(weight.abs().max() / 127)
    expected = torch.fake_quantize_per_tensor_affine(weight, scale, 0, -127, 127)
    assert torch.allclose(qz.fake_quantize(weight, 8, "absmax", "tensor"), expected, atol=1e-7)


def test_all_zero_groups_come_back_as_zeros():
    weight = torch.zeros(2, 8)
    for scheme in qz.SCHEMES:
        assert torch.equal(qz.fake_quantize(weight, 4, scheme, "group", group_size=4), weight)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="group_size"):
        qz.quantize(_weight(4, 48), granularity="group", group_size=32)
    with pytest.raises(ValueError, match="bits"):
        qz.quantize(_weight(), bits=16)
    with pytest.raises(ValueError, match="scheme"):
        qz.quantize(_weight(), scheme="minmax")
    with pytest.raises(ValueError, match="2-D"):
        qz.quantize(torch.zeros(2, 3, 4), granularity="channel")


def test_bits_per_weight_counts_scales_and_zero_points():
    assert qz.bits_per_weight(4, "zeropoint", 32, scale_bits=16) == 4 + 20 / 32
    assert qz.bits_per_weight(8, "absmax", 576) == 8 + 32 / 576


def test_fake_quantized_restores_the_weights_and_skips_the_head():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 8))
    before = [p.detach().clone() for p in model.parameters()]
    with qz.fake_quantized(model, bits=4, granularity="group", group_size=8, skip=("2",)) as r:
        assert not torch.equal(model[0].weight, before[0])
        assert torch.equal(model[2].weight, before[2])  # skipped by name
        assert r.n_weights == 32 * 32
        assert r.max_abs_error > 0
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))


def test_magnitude_mask_prunes_exactly_the_smallest_weights():
    weight = torch.tensor([[0.1, -0.5, 0.02], [0.3, -0.01, 0.9]])
    mask = qz.magnitude_mask(weight, 0.5)
    assert mask.tolist() == [[False, True, False], [True, False, True]]


def test_structured_mask_removes_whole_rows_or_columns():
    weight = torch.tensor([[1.0, 0.0, 3.0], [0.1, 0.1, 0.1], [2.0, 0.0, 2.0]])
    rows = qz.structured_mask(weight, 1 / 3, dim=0)
    assert rows.tolist() == [[True] * 3, [False] * 3, [True] * 3]
    columns = qz.structured_mask(weight, 1 / 3, dim=1)
    assert columns[:, 1].logical_not().all() and columns[:, [0, 2]].all()


def test_pruned_reports_sparsity_and_restores():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 16), nn.Linear(16, 4))
    before = model[0].weight.detach().clone()
    with qz.pruned(model, lambda name, w: qz.magnitude_mask(w, 0.25), skip=()) as sparsity:
        assert sparsity == pytest.approx(0.25, abs=1e-3)
        assert (model[0].weight == 0).float().mean() == pytest.approx(0.25, abs=1e-3)
    assert torch.equal(model[0].weight, before)
