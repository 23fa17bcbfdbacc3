"""Tests for llmzero.models.bert: shapes, bidirectionality, padding, the sparse MLM head,
equality with Hugging Face's BertForMaskedLM, configuration errors and learning."""

from __future__ import annotations

import pytest
import torch

from llmzero.models.bert import IGNORE_INDEX, Bert, BertConfig
from llmzero.training.mlm import mask_tokens

VOCAB = 50


def small_model(seed: int = 0, **overrides) -> Bert:
    torch.manual_seed(seed)
    settings = {"vocab_size": VOCAB, "max_len": 16, "d_model": 32, "n_heads": 4, "n_layers": 2}
    return Bert(BertConfig(**{**settings, **overrides})).eval()


def random_ids(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, shape, generator=torch.Generator().manual_seed(seed))


def random_labels(ids: torch.Tensor, seed: int = 1) -> torch.Tensor:
    chosen = torch.rand(ids.shape, generator=torch.Generator().manual_seed(seed)) < 0.3
    chosen[0, 0] = True  # at least one labelled position
    return torch.where(chosen, ids, IGNORE_INDEX)


@pytest.mark.parametrize("pre_norm", [False, True])
def test_output_shapes(pre_norm: bool) -> None:
    model = small_model(pre_norm=pre_norm)
    ids = random_ids((3, 10))
    logits, loss = model(ids)
    assert logits.shape == (3, 10, VOCAB) and loss is None
    assert model.encode(ids).shape == (3, 10, 32)
    labels = random_labels(ids)
    _, loss = model(ids, labels)
    assert loss is not None and loss.shape == ()
    sparse_logits, _ = model(ids, labels, selected_only=True)
    assert sparse_logits.shape == (int((labels != IGNORE_INDEX).sum()), VOCAB)


def test_selected_only_gives_the_same_logits_and_loss_as_the_full_head() -> None:
    model = small_model()
    ids = random_ids((4, 12))
    labels = random_labels(ids)
    full_logits, full_loss = model(ids, labels)
    sparse_logits, sparse_loss = model(ids, labels, selected_only=True)
    torch.testing.assert_close(sparse_logits, full_logits[labels != IGNORE_INDEX])
    torch.testing.assert_close(sparse_loss, full_loss)


def test_attention_is_bidirectional_every_position_sees_later_tokens() -> None:
    model = small_model()
    ids = random_ids((2, 8))
    changed = ids.clone()
    changed[:, -1] = (changed[:, -1] + 1) % VOCAB  # change only the last token
    before, after = model.encode(ids), model.encode(changed)
    for position in range(7):  # every earlier position's vector moves
        assert not torch.allclose(before[:, position], after[:, position])


def test_causal_twin_never_sees_later_tokens() -> None:
    model = small_model(causal=True)
    ids = random_ids((2, 8))
    before = model.encode(ids)
    for position in range(1, 8):
        changed = ids.clone()
        changed[:, position:] = (changed[:, position:] + 1) % VOCAB  # change the future
        after = model.encode(changed)
        torch.testing.assert_close(after[:, :position], before[:, :position])
        assert not torch.allclose(after[:, position], before[:, position])


def test_padded_positions_do_not_change_the_real_ones() -> None:
    model = small_model()
    ids = random_ids((2, 10))
    attention_mask = torch.ones_like(ids)
    attention_mask[0, 6:] = 0  # the first sequence has 6 real tokens
    other_padding = ids.clone()
    other_padding[0, 6:] = (other_padding[0, 6:] + 7) % VOCAB
    a = model.encode(ids, attention_mask)
    b = model.encode(other_padding, attention_mask)
    torch.testing.assert_close(a[0, :6], b[0, :6])
    torch.testing.assert_close(a[1], b[1])
    alone = model.encode(ids[:1, :6])  # the same sequence without padding at all
    torch.testing.assert_close(a[0, :6], alone[0], atol=1e-5, rtol=1e-5)


def test_segment_ids_change_the_output() -> None:
    model = small_model()
    ids = random_ids((1, 8))
    segments = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1]])
    with torch.no_grad():
        model.segment_embedding.weight.normal_()
    assert not torch.allclose(model.encode(ids), model.encode(ids, token_type_ids=segments))


def test_head_is_tied_to_the_token_embedding() -> None:
    model = small_model()
    ids = random_ids((2, 6))
    with torch.no_grad():
        model.token_embedding.weight[5].add_(1.0)  # move one row of the shared matrix
        hidden = model.encode(ids)
        h = model.head_ln(model.head_activation(model.head_dense(hidden)))
        expected = h @ model.token_embedding.weight.T + model.head_bias
    torch.testing.assert_close(model.mlm_logits(hidden), expected)


def test_parameter_count_by_formula() -> None:
    config = BertConfig(vocab_size=VOCAB, max_len=16, d_model=32, n_heads=4, n_layers=3)
    model = Bert(config)
    d, f, n_layers = 32, 128, 3
    embeddings = (VOCAB + 16 + 2) * d + 2 * d  # three tables and a LayerNorm
    per_block = 4 * (d * d + d) + (2 * d * f + f + d) + 4 * d
    head = d * d + d + 2 * d + VOCAB  # dense, LayerNorm, output bias (matrix tied)
    assert model.num_parameters() == embeddings + n_layers * per_block + head
    assert model.num_parameters(exclude_embeddings=True) == 2 * d + n_layers * per_block + head
    pre_ln = Bert(BertConfig(vocab_size=VOCAB, max_len=16, d_model=32, n_layers=3, pre_norm=True))
    assert pre_ln.num_parameters() == model.num_parameters() + 2 * d  # the final LayerNorm


def test_equals_hugging_face_bert_for_masked_lm_on_the_same_weights() -> None:
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=16,
    )
    torch.manual_seed(0)
    hf_model = transformers.BertForMaskedLM(hf_config).eval()
    with torch.no_grad():  # move LayerNorms and biases away from their initial values
        for name, parameter in hf_model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                parameter.add_(0.1 * torch.randn_like(parameter))
    ours = Bert.from_hf_bert(hf_model).eval()
    assert ours.num_parameters() == sum(p.numel() for p in hf_model.parameters())
    ids = random_ids((3, 16))
    segments = torch.randint(0, 2, (3, 16), generator=torch.Generator().manual_seed(2))
    attention_mask = torch.ones_like(ids)
    attention_mask[0, 11:] = 0
    labels = random_labels(ids)
    with torch.no_grad():
        our_logits, our_loss = ours(
            ids, labels, attention_mask=attention_mask, token_type_ids=segments
        )
        theirs = hf_model(
            input_ids=ids, attention_mask=attention_mask, token_type_ids=segments, labels=labels
        )
    torch.testing.assert_close(our_logits, theirs.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(our_loss, theirs.loss, atol=1e-5, rtol=0)


def test_from_hf_bert_refuses_what_it_does_not_implement() -> None:
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=64,
        hidden_act="relu",
    )
    with pytest.raises(ValueError, match="hidden_act"):
        Bert.from_hf_bert(transformers.BertForMaskedLM(hf_config))


def test_hf_name_maps_every_parameter_and_rejects_unknown_names() -> None:
    model = small_model()
    names = {Bert.hf_name(name) for name, _ in model.named_parameters()}
    assert len(names) == len(list(model.parameters()))
    assert "bert.encoder.layer.1.output.LayerNorm.weight" in names
    with pytest.raises(KeyError, match="no Hugging Face counterpart"):
        Bert.hf_name("blocks.0.unknown.weight")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"d_model": 30, "n_heads": 4}, "divisible"),
        ({"n_layers": 0}, "n_layers"),
        ({"dropout": 1.0}, "dropout"),
        ({"type_vocab_size": 0}, "type_vocab_size"),
        ({"layer_norm_eps": 0.0}, "layer_norm_eps"),
        ({"vocab_size": 2.5}, "vocab_size"),
    ],
)
def test_config_rejects_bad_values(overrides: dict, message: str) -> None:
    settings = {"vocab_size": VOCAB, **overrides}
    with pytest.raises(ValueError, match=message):
        BertConfig(**settings)


def test_bad_inputs_raise_clear_errors() -> None:
    model = small_model()
    with pytest.raises(ValueError, match="max_len"):
        model(random_ids((1, 17)))
    with pytest.raises(ValueError, match=r"\(batch, seq\)"):
        model(random_ids((8,)))
    with pytest.raises(ValueError, match="needs labels"):
        model(random_ids((1, 8)), selected_only=True)
    with pytest.raises(ValueError, match="shape of input_ids"):
        model(random_ids((2, 8)), random_ids((2, 7)))


def test_learns_to_fill_in_tokens_from_the_right_context() -> None:
    # Each sequence repeats one token, so a masked token equals its neighbours. Position 0
    # has no left neighbour: filling it in needs the right context, which a causal model
    # never sees.
    torch.manual_seed(0)
    mask_id = VOCAB - 1
    model = Bert(
        BertConfig(vocab_size=VOCAB, max_len=12, d_model=32, n_heads=4, n_layers=2, pre_norm=True)
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)

    def batch(size: int) -> torch.Tensor:
        tokens = torch.randint(0, VOCAB - 1, (size, 1), generator=generator)
        return tokens.expand(size, 12).clone()  # (size, 12)

    for _ in range(150):
        inputs, labels = mask_tokens(batch(32), mask_id, VOCAB, set(), generator=generator)
        _, loss = model(inputs, labels, selected_only=True)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    inputs, labels = mask_tokens(batch(512), mask_id, VOCAB, set(), generator=generator)
    with torch.no_grad():
        logits, _ = model(inputs, labels)  # (512, 12, V)
    first = labels[:, 0] != IGNORE_INDEX  # sequences whose first token must be predicted
    first_right = logits[first, 0].argmax(-1) == labels[first, 0]
    assert int(first.sum()) > 30
    assert first_right.float().mean() > 0.95
