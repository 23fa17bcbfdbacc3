"""Tests for llmzero.models.rnn: shapes, initial loss, learning, batching, sampling, evaluation."""

from __future__ import annotations

import math

import pytest
import torch

from llmzero.models.rnn import CharLSTM, CharLSTMConfig, RandomBatches, get_batch, heldout_nll


def small_lstm(seed: int = 0, **overrides) -> CharLSTM:
    torch.manual_seed(seed)
    config = CharLSTMConfig(**{"vocab_size": 20, "n_embd": 8, "n_hidden": 32, **overrides})
    return CharLSTM(config)


def test_forward_returns_logits_loss_and_state_of_the_right_shapes() -> None:
    model = small_lstm(n_layer=2)
    idx = torch.randint(0, 20, (3, 7))
    logits, loss, (h, c) = model(idx, targets=idx)
    assert logits.shape == (3, 7, 20)
    assert loss is not None and loss.dim() == 0
    assert h.shape == c.shape == (2, 3, 32)
    assert model(idx)[1] is None


def test_loss_at_initialisation_is_close_to_log_vocab_size() -> None:
    model = small_lstm()
    idx = torch.randint(0, 20, (16, 32), generator=torch.Generator().manual_seed(1))
    _, loss, _ = model(idx, targets=idx.roll(-1, dims=1))
    assert abs(loss.item() - math.log(20)) < 0.05


def test_forget_gate_bias_is_initialised_as_configured() -> None:
    model = small_lstm(forget_bias=1.0)
    hidden = model.config.n_hidden
    total_bias = model.lstm.bias_ih_l0 + model.lstm.bias_hh_l0  # (4H,)
    assert torch.all(total_bias[hidden : 2 * hidden] == 1.0)


def test_carrying_the_state_across_chunks_equals_one_long_forward() -> None:
    model = small_lstm().eval()
    idx = torch.randint(0, 20, (2, 12))
    with torch.no_grad():
        full, _, _ = model(idx)
        first, _, state = model(idx[:, :5])
        second, _, _ = model(idx[:, 5:], state=state)
    assert torch.allclose(torch.cat([first, second], dim=1), full, atol=1e-6)


def test_overfits_a_tiny_string() -> None:
    text = "hello world, hello lstm. "
    chars = sorted(set(text))
    ids = torch.tensor([chars.index(ch) for ch in text * 4])  # (100,)
    model = small_lstm(vocab_size=len(chars))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    inputs, targets = ids[None, :-1], ids[None, 1:]  # (1, 99) each
    for _ in range(150):
        _, loss, _ = model(inputs, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.3  # from ln(12) ~ 2.5 at the start


def test_get_batch_targets_are_inputs_shifted_by_one() -> None:
    ids = torch.arange(100)
    inputs, targets = get_batch(ids, batch_size=5, block_size=8, generator=torch.Generator())
    assert inputs.shape == targets.shape == (5, 8)
    assert torch.equal(targets[:, :-1], inputs[:, 1:])
    assert torch.equal(targets[:, -1], inputs[:, -1] + 1)  # consecutive ids: windows are contiguous


def test_get_batch_is_reproducible_and_rejects_short_sequences() -> None:
    ids = torch.arange(50)
    first = get_batch(ids, 4, 10, torch.Generator().manual_seed(3))
    again = get_batch(ids, 4, 10, torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    with pytest.raises(ValueError):
        get_batch(torch.arange(8), 2, 8)


def test_random_batches_has_a_length_and_can_be_iterated_again() -> None:
    batches = RandomBatches(torch.arange(200), batch_size=3, block_size=6, n_batches=4, seed=0)
    assert len(batches) == 4
    assert len(list(batches)) == len(list(batches)) == 4


def test_sampling_with_a_seeded_generator_is_reproducible() -> None:
    model = small_lstm()
    prompt = torch.zeros(2, 1, dtype=torch.long)
    first = model.generate(prompt, 15, temperature=1.0, generator=torch.Generator().manual_seed(7))
    again = model.generate(prompt, 15, temperature=1.0, generator=torch.Generator().manual_seed(7))
    other = model.generate(prompt, 15, temperature=1.0, generator=torch.Generator().manual_seed(8))
    assert first.shape == (2, 16)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert torch.equal(first[:, :1], prompt)


def test_generate_restores_training_mode() -> None:
    model = small_lstm().train()
    model.generate(torch.zeros(1, 1, dtype=torch.long), 3)
    assert model.training


def test_heldout_nll_equals_the_mean_loss_of_one_long_forward() -> None:
    model = small_lstm()
    ids = torch.randint(0, 20, (41,))
    with torch.no_grad():
        _, loss, _ = model(ids[None, :-1], ids[None, 1:])
    assert heldout_nll(model, ids, n_streams=1, chunk_len=7) == pytest.approx(loss.item(), rel=1e-5)
