"""Tests of llmzero.applications.ner: reading CoNLL files, aligning word labels to sub-word
tokens, batches like ``DataCollatorForTokenClassification``, the token classifier (equal to
``BertForTokenClassification``) and word-level prediction."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import tiny_bert

from llmzero.applications import ner
from llmzero.core.runtime import seed_everything
from llmzero.training.finetune import finetune

transformers = pytest.importorskip("transformers")

WORDS = "[PAD] [UNK] [CLS] [SEP] [MASK] new york ##er ##s love the mets in went to paris i"
SENTENCES = [
    (["New", "Yorkers", "love", "the", "Mets"], ["B-location", "O", "O", "O", "B-group"]),
    (["I", "went", "to", "Paris"], ["O", "O", "O", "B-location"]),
    (["the", "Mets", "in", "New", "York"], ["O", "B-group", "O", "B-location", "I-location"]),
]
LABELS = ner.label_list(tags for _, tags in SENTENCES)


def tiny_tokenizer():
    return tiny_bert(WORDS)[0]


def tiny_config(num_labels: int):
    return tiny_bert(WORDS, num_labels=num_labels)[1]


def tiny_model(seed: int = 0) -> ner.TokenClassifier:
    seed_everything(seed)
    encoder = transformers.BertModel(tiny_config(len(LABELS)), add_pooling_layer=False)
    return ner.TokenClassifier(encoder, num_labels=len(LABELS))


def test_read_conll_splits_sentences_at_blank_lines(tmp_path: Path):
    file = tmp_path / "tiny.conll"
    file.write_text("New\tB-location\nYork\tI-location\n\n\nhi\tO\n", encoding="utf-8")
    assert ner.read_conll(file) == [
        (["New", "York"], ["B-location", "I-location"]),
        (["hi"], ["O"]),
    ]
    file.write_text("lonely\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 1"):
        ner.read_conll(file)
    with pytest.raises(FileNotFoundError, match="assets"):
        ner.read_conll(tmp_path / "missing.conll")


def test_label_list_puts_o_first_then_b_and_i_per_type():
    assert LABELS == ["O", "B-group", "I-group", "B-location", "I-location"]


def test_first_subtoken_gets_the_label_and_the_rest_are_ignored():
    word_ids = [None, 0, 1, 1, 1, 2, None]
    assert ner.align_labels(word_ids, [3, 0, 1]) == [-100, 3, 0, -100, -100, 1, -100]
    assert ner.align_labels(word_ids, [3, 0, 1], strategy="all") == [-100, 3, 0, 0, 0, 1, -100]
    with pytest.raises(ValueError, match="strategy"):
        ner.align_labels(word_ids, [3, 0, 1], strategy="last")
    with pytest.raises(ValueError, match="word labels"):
        ner.align_labels([None, 0, 5], [1])


def test_encode_aligns_a_word_split_into_pieces():
    (row,) = ner.encode(tiny_tokenizer(), SENTENCES[:1], LABELS, max_length=16)
    assert row["word_ids"] == [None, 0, 1, 1, 1, 2, 3, 4, None]  # Yorkers = york ##er ##s
    assert row["labels"] == [-100, 3, 0, -100, -100, 0, 0, 1, -100]
    with pytest.raises(ValueError, match="not in the label list"):
        ner.encode(tiny_tokenizer(), [(["x"], ["B-person"])], LABELS, max_length=16)


def test_batches_pad_like_the_transformers_collator():
    tokenizer = tiny_tokenizer()
    batches = ner.make_token_batches(tokenizer, SENTENCES, LABELS, batch_size=3, max_length=16)
    rows = ner.encode(tokenizer, SENTENCES, LABELS, max_length=16)
    collator = transformers.DataCollatorForTokenClassification(tokenizer, return_tensors="pt")
    expected = collator(
        [{k: r[k] for k in ("input_ids", "attention_mask", "labels")} for r in rows]
    )
    for key in ("input_ids", "attention_mask", "labels"):
        assert torch.equal(batches[0][key], expected[key]), key


def test_token_classifier_equals_bert_for_token_classification():
    model = tiny_model().eval()
    reference = transformers.BertForTokenClassification(tiny_config(len(LABELS))).eval()
    reference.bert.load_state_dict(model.encoder.state_dict(), strict=False)
    reference.classifier.load_state_dict(model.classifier.state_dict())
    batch = ner.make_token_batches(
        tiny_tokenizer(), SENTENCES, LABELS, batch_size=3, max_length=16
    )[0]
    ours = model(**batch)
    theirs = reference(**batch)
    torch.testing.assert_close(ours["logits"], theirs.logits, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours["loss"], theirs.loss, rtol=1e-5, atol=1e-6)


def test_finetuning_learns_the_training_tags_and_predicts_one_tag_per_word():
    tokenizer, model = tiny_tokenizer(), tiny_model()
    batches = ner.make_token_batches(tokenizer, SENTENCES, LABELS, batch_size=3, max_length=16)
    log = finetune(model, batches * 40, lr=1e-2, seed=0)
    assert log.losses[-1] < 0.1 * log.losses[0]
    predicted = ner.predict_tags(model, tokenizer, [w for w, _ in SENTENCES], LABELS, batch_size=2)
    assert predicted == [tags for _, tags in SENTENCES]


def test_word_predictions_take_the_first_piece_and_mark_cut_words():
    assert ner.word_predictions([None, 0, 0, 1, None], [9, 2, 7, 4, 9], n_words=3) == [2, 4, None]


def test_predict_tags_gives_o_to_words_cut_by_max_length():
    tokenizer, model = tiny_tokenizer(), tiny_model()
    words = ["New", "Yorkers", "love", "the", "Mets"]
    (tags,) = ner.predict_tags(model, tokenizer, [words], LABELS, max_length=4)
    assert len(tags) == 5 and tags[2:] == ["O", "O", "O"]
    with pytest.raises(ValueError, match="pre-split"):
        ner.predict_tags(model, tokenizer, ["New York"], LABELS)
