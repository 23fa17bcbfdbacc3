"""Tests for llmzero.models.seq2seq: shapes, masks, padding, greedy decoding and learning."""

from __future__ import annotations

import pytest
import torch

from llmzero.models.seq2seq import IGNORE_INDEX, Seq2Seq, Seq2SeqConfig

PAD, BOS, EOS = 0, 1, 2


def small_model(seed: int = 0, **overrides) -> Seq2Seq:
    torch.manual_seed(seed)
    settings = {
        "vocab_size": 20,
        "max_src_len": 10,
        "max_tgt_len": 8,
        "d_model": 32,
        "n_heads": 4,
        "n_encoder_layers": 2,
        "n_decoder_layers": 2,
        "d_ff": 64,
        **overrides,
    }
    return Seq2Seq(Seq2SeqConfig(**settings)).eval()


def random_ids(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.randint(3, 20, shape, generator=torch.Generator().manual_seed(seed))


def test_output_shapes() -> None:
    model = small_model()
    src, tgt = random_ids((3, 7)), random_ids((3, 5), seed=1)
    logits, loss = model(src, tgt, targets=tgt)
    assert logits.shape == (3, 5, 20)
    assert loss is not None and loss.shape == ()
    assert model(src, tgt)[1] is None
    assert model.encode(src).shape == (3, 7, 32)
    _, weights = model.decode(
        tgt, model.encode(src), model.source_attention(src), need_weights=True
    )
    assert len(weights) == 2 and weights[0].shape == (3, 4, 5, 7)
    out = model.generate(src, max_new_tokens=6)
    assert out.shape[0] == 3 and 1 <= out.shape[1] <= 6


def test_causal_mask_stops_the_decoder_seeing_future_target_tokens() -> None:
    model = small_model()
    src, tgt = random_ids((2, 6)), random_ids((2, 8), seed=1)
    logits, _ = model(src, tgt)
    for t in range(1, 8):
        changed = tgt.clone()
        changed[:, t:] = (changed[:, t:] + 1 - 3) % 17 + 3  # new tokens from position t on
        new_logits, _ = model(src, changed)
        torch.testing.assert_close(new_logits[:, :t], logits[:, :t])  # the past is unaffected
        assert not torch.allclose(new_logits[:, t:], logits[:, t:])


def test_encoder_is_bidirectional() -> None:
    model = small_model()
    src = random_ids((1, 6))
    changed = src.clone()
    changed[0, -1] = 3 if src[0, -1] != 3 else 4  # change the last source token only
    assert not torch.allclose(model.encode(src)[:, 0], model.encode(changed)[:, 0])


def test_padding_in_the_source_does_not_change_outputs() -> None:
    model = small_model()
    src, tgt = random_ids((2, 5)), random_ids((2, 4), seed=1)
    padded = torch.cat([src, torch.full((2, 4), PAD)], dim=1)  # (2, 9): four pads on the right
    torch.testing.assert_close(model(padded, tgt)[0], model(src, tgt)[0])
    # A batch with sources of different lengths equals each source run on its own.
    short = random_ids((1, 3), seed=2)
    batch = torch.cat([src[:1], torch.cat([short, torch.full((1, 2), PAD)], dim=1)])  # (2, 5)
    together = model(batch, tgt)[0]
    torch.testing.assert_close(together[1:], model(short, tgt[1:])[0])
    assert torch.equal(model.generate(batch, 6)[1:], model.generate(short, 6))


def test_cross_attention_gives_padding_zero_weight() -> None:
    model = small_model()
    src = torch.cat([random_ids((2, 4)), torch.full((2, 3), PAD)], dim=1)  # (2, 7)
    _, weights = model.decode(
        random_ids((2, 5), seed=1),
        model.encode(src),
        model.source_attention(src),
        need_weights=True,
    )
    for layer in weights:  # (B, H, T, S)
        assert (layer[..., 4:] == 0).all()
        torch.testing.assert_close(layer.sum(-1), torch.ones(layer.shape[:-1]))


def test_greedy_generation_stops_at_eos_and_pads_after_it() -> None:
    model = small_model()
    eos_at = torch.tensor([2, 4])  # row 0 ends at its 3rd token, row 1 at its 5th

    def scripted_decode(tgt_ids, memory, src_attention, need_weights=False):
        batch, length = tgt_ids.shape
        logits = torch.zeros(batch, length, 20)
        logits[:, :, 5] = 1.0  # token 5 is the most probable ...
        step = length - 1  # ... except at the scripted step, where it is EOS
        logits[step == eos_at, -1, EOS] = 2.0
        return logits, []

    model.decode = scripted_decode
    out = model.generate(random_ids((2, 4)), max_new_tokens=8)
    assert out.tolist() == [[5, 5, EOS, PAD, PAD], [5, 5, 5, 5, EOS]]


def test_generation_without_eos_runs_max_new_tokens() -> None:
    model = small_model()
    model.decode = lambda tgt, *args, **kwargs: (torch.zeros(*tgt.shape, 20), [])  # argmax: 0
    assert model.generate(random_ids((2, 3)), max_new_tokens=5).shape == (2, 5)


def test_a_tiny_model_overfits_a_few_pairs() -> None:
    # Four pairs: the target is the source reversed. One block each side is enough.
    src = random_ids((4, 4), seed=3)
    target = src.flip(1)
    tgt_in = torch.cat([torch.full((4, 1), BOS), target], dim=1)  # (4, 5)
    tgt_out = torch.cat([target, torch.full((4, 1), EOS)], dim=1)  # (4, 5)
    model = small_model(d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=32)
    optimizer = torch.optim.AdamW(model.train().parameters(), lr=1e-2)
    for _ in range(120):
        _, loss = model(src, tgt_in, tgt_out)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05
    assert torch.equal(model.eval().generate(src, max_new_tokens=8), tgt_out)


def test_loss_ignores_minus_100_targets() -> None:
    model = small_model()
    src, tgt = random_ids((2, 5)), random_ids((2, 6), seed=1)
    targets = tgt.clone()
    targets[:, 3:] = IGNORE_INDEX
    logits, loss = model(src, tgt, targets)
    expected = torch.nn.functional.cross_entropy(
        logits[:, :3].reshape(-1, 20), tgt[:, :3].reshape(-1)
    )
    torch.testing.assert_close(loss, expected)


def test_output_layer_is_tied_to_the_token_embedding() -> None:
    model = small_model()
    assert model.lm_head.weight is model.token_embedding.weight
    untied = sum(p.numel() for p in model.parameters()) + model.lm_head.weight.numel()
    assert model.num_parameters() == untied - 20 * 32


@pytest.mark.parametrize(
    "settings",
    [
        {"vocab_size": 0},
        {"d_model": 30, "n_heads": 4},
        {"dropout": 1.0},
        {"eos_id": 20},
        {"n_encoder_layers": True},
    ],
)
def test_bad_configurations_are_rejected(settings: dict) -> None:
    with pytest.raises(ValueError):
        Seq2SeqConfig(**{"vocab_size": 20, **settings})


def test_bad_inputs_are_rejected() -> None:
    model = small_model()
    with pytest.raises(ValueError, match="max_src_len"):
        model(random_ids((1, 11)), random_ids((1, 3)))
    with pytest.raises(ValueError, match="max_tgt_len"):
        model(random_ids((1, 3)), random_ids((1, 9)))
    with pytest.raises(ValueError, match="pad_id"):
        model(torch.full((1, 3), PAD), random_ids((1, 3)))
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(random_ids((1, 3)), max_new_tokens=9)


def test_beam_search_with_one_beam_is_greedy():
    model = small_model()
    src = random_ids((4, 6), seed=1)
    greedy = model.generate(src, max_new_tokens=8)
    for row in range(4):
        beam = model.beam_search(src[row : row + 1], max_new_tokens=8, num_beams=1)
        expected = greedy[row]
        expected = (
            expected[: int((expected == EOS).nonzero()[0]) + 1] if EOS in expected else expected
        )
        assert torch.equal(beam, expected)


def test_beam_search_finds_at_least_the_greedy_score():
    model = small_model(seed=2, vocab_size=8)  # few tokens: end tokens come up often
    src = random_ids((1, 5), seed=3) % 5 + 3

    def normalised_log_prob(tokens: torch.Tensor) -> float:
        tgt_in = torch.cat([torch.tensor([BOS]), tokens[:-1]])[None]
        logits, _ = model(src, tgt_in)
        log_probs = logits.log_softmax(-1)[0].gather(1, tokens[:, None]).sum()
        return log_probs.item() / len(tokens)

    greedy = model.beam_search(src, max_new_tokens=8, num_beams=1)
    beam = model.beam_search(src, max_new_tokens=8, num_beams=4)
    assert normalised_log_prob(beam) >= normalised_log_prob(greedy) - 1e-6


def test_beam_search_rejects_a_batch():
    with pytest.raises(ValueError, match="one source"):
        small_model().beam_search(random_ids((2, 4)), max_new_tokens=4, num_beams=2)
