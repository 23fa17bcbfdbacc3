import pytest
import torch
from torch import nn

from llmzero.training import privacy


def _model_and_batch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 2))
    return model, torch.randn(6, 5), torch.randint(0, 2, (6,))


def test_per_example_gradients_equal_a_loop():
    model, inputs, targets = _model_and_batch()
    loss_fn = nn.functional.cross_entropy
    batched = privacy.per_example_gradients(model, loss_fn, inputs, targets)
    for i in range(len(inputs)):
        model.zero_grad()
        loss_fn(model(inputs[i : i + 1]), targets[i : i + 1]).backward()
        for name, parameter in model.named_parameters():
            torch.testing.assert_close(batched[name][i], parameter.grad, atol=1e-6, rtol=1e-5)


def test_clipped_per_example_norms_are_at_most_max_norm():
    model, inputs, targets = _model_and_batch()
    grads = privacy.per_example_gradients(model, nn.functional.cross_entropy, inputs, targets)
    clipped, norms = privacy.clip_per_example(grads, max_norm=0.1)
    after = sum(g.reshape(6, -1).pow(2).sum(1) for g in clipped.values()).sqrt()
    assert (after <= 0.1 + 1e-6).all()
    small = privacy.clip_per_example(grads, max_norm=1e6)[0]  # a huge bound changes nothing
    for name in grads:
        torch.testing.assert_close(small[name], grads[name])
    assert norms.shape == (6,)


def test_dp_sgd_step_without_noise_is_clipped_sgd():
    model, inputs, targets = _model_and_batch()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    grads = privacy.per_example_gradients(model, nn.functional.cross_entropy, inputs, targets)
    clipped, _ = privacy.clip_per_example(grads, 0.5)
    privacy.dp_sgd_step(model, nn.functional.cross_entropy, inputs, targets, 0.1, 0.5, 0.0)
    for name, parameter in model.named_parameters():
        expected = before[name] - 0.1 * clipped[name].mean(dim=0)
        torch.testing.assert_close(parameter.detach(), expected)


def test_bad_max_norm_raises():
    model, inputs, targets = _model_and_batch()
    grads = privacy.per_example_gradients(model, nn.functional.cross_entropy, inputs, targets)
    with pytest.raises(ValueError, match="max_norm"):
        privacy.clip_per_example(grads, 0.0)
