"""Tests of llmzero.training.finetune: the encoder classifier, freezing, the schedule, the
plain fine-tuning loop, and its agreement with ``transformers.Trainer`` (tiny random BERT)."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_bert
from torch import nn

from llmzero.core.runtime import seed_everything
from llmzero.models.embeddings import mean_pool
from llmzero.training.finetune import (
    ClassificationHead,
    EncoderClassifier,
    count_parameters,
    finetune,
    freeze_except,
    linear_warmup_schedule,
    make_batches,
    parameter_groups,
    predict_logits,
)

transformers = pytest.importorskip("transformers")

WORDS = "[PAD] [UNK] [CLS] [SEP] [MASK] good bad film fun dull great awful not very a the plot"
TEXTS = [
    "good film",
    "bad film",
    "a very good plot",
    "a dull plot",
    "not a good film",
    "great fun",
    "awful",
    "the film is not very fun",
    "good good good",
    "dull dull",
    "a great film",
    "not awful",
]
LABELS = [1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 1, 1]


def tiny_tokenizer():
    return tiny_bert(WORDS)[0]


def tiny_classifier(seed: int = 0, dropout: float = 0.1) -> EncoderClassifier:
    seed_everything(seed)
    _, config = tiny_bert(WORDS, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    return EncoderClassifier(transformers.BertModel(config), num_labels=2, dropout=dropout)


# ----------------------------------------------------------------------------- the model


def test_classifier_logits_are_the_head_on_mean_pooled_states():
    model = tiny_classifier().eval()
    batch = make_batches(tiny_tokenizer(), TEXTS[:4], LABELS[:4], batch_size=4, max_length=16)[0]
    outputs = model(**batch)
    hidden = model.encoder(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
    ).last_hidden_state  # (batch, seq, hidden)
    pooled = mean_pool(hidden, batch["attention_mask"])
    expected = pooled @ model.head.linear.weight.T + model.head.linear.bias
    assert outputs["logits"].shape == (4, 2)
    torch.testing.assert_close(outputs["logits"], expected)
    torch.testing.assert_close(
        outputs["loss"], nn.functional.cross_entropy(expected, batch["labels"])
    )
    assert "loss" not in model(batch["input_ids"], batch["attention_mask"])


def test_classifier_drops_the_unused_pooler_from_its_parameters():
    model = tiny_classifier()
    assert model.encoder.pooler is None
    assert not any("pooler" in name for name, _ in model.named_parameters())
    blocks = sum(p.numel() for p in model.encoder.encoder.parameters())
    embeddings = sum(p.numel() for p in model.encoder.embeddings.parameters())
    head = sum(p.numel() for p in model.head.parameters())
    assert count_parameters(model) == blocks + embeddings + head


def test_padding_does_not_change_a_texts_logits():
    model = tiny_classifier().eval()
    tokenizer = tiny_tokenizer()
    alone = make_batches(tokenizer, [TEXTS[0]], batch_size=1, max_length=16)[0]
    padded = make_batches(tokenizer, [TEXTS[0], TEXTS[7]], batch_size=2, max_length=16)[0]
    assert padded["attention_mask"][0].sum() < padded["attention_mask"].shape[1]  # was padded
    torch.testing.assert_close(
        model(**alone)["logits"][0], model(**padded)["logits"][0], atol=1e-5, rtol=1e-5
    )


def test_head_rejects_bad_sizes_and_classifier_needs_a_hidden_size():
    with pytest.raises(ValueError, match="num_labels"):
        ClassificationHead(8, 1)
    with pytest.raises(ValueError, match="dropout"):
        ClassificationHead(8, 2, dropout=1.0)
    with pytest.raises(ValueError, match="hidden_size="):
        EncoderClassifier(nn.Identity())


# ----------------------------------------------------------------------------- freezing


def test_freeze_except_counts_and_flags_trainable_parameters():
    model = tiny_classifier()
    total = count_parameters(model)
    head = sum(p.numel() for p in model.head.parameters())
    assert freeze_except(model, ["head."]) == head == count_parameters(model, trainable_only=True)
    last_block = sum(p.numel() for p in model.encoder.encoder.layer[1].parameters())
    assert freeze_except(model, ["encoder.encoder.layer.1.", "head."]) == head + last_block
    assert not any(p.requires_grad for p in model.encoder.embeddings.parameters())
    assert freeze_except(model, [""]) == total


def test_freeze_except_rejects_a_prefix_that_matches_nothing():
    model = tiny_classifier()
    with pytest.raises(ValueError, match="no parameter name starts with"):
        freeze_except(model, ["encoder.layer.1."])  # missing the inner "encoder."
    with pytest.raises(ValueError, match="list of strings"):
        freeze_except(model, "head.")


def test_frozen_parameters_do_not_move_during_finetuning():
    model = tiny_classifier()
    freeze_except(model, ["head."])
    before = copy.deepcopy(model.encoder.state_dict())
    batches = make_batches(tiny_tokenizer(), TEXTS, LABELS, batch_size=4, max_length=16, seed=0)
    finetune(model, batches, lr=1e-2, seed=0)
    for name, tensor in model.encoder.state_dict().items():
        assert torch.equal(tensor, before[name]), name


def test_parameter_groups_exclude_biases_and_layernorm_from_weight_decay():
    model = tiny_classifier()
    decay, no_decay = parameter_groups(model, weight_decay=0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all("bias" in names[id(p)] or "LayerNorm" in names[id(p)] for p in no_decay["params"])
    assert all(p.ndim == 2 for p in decay["params"])  # embeddings and weight matrices only
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    # The same split as transformers.Trainer's rule.
    trainer_rule = set(transformers.Trainer.get_decay_parameter_names(None, model))
    assert {names[id(p)] for p in decay["params"]} == trainer_rule
    freeze_except(model, ["head."])
    assert sum(len(group["params"]) for group in parameter_groups(model, 0.1)) == 2


# ----------------------------------------------------------------------------- schedule, data


def test_linear_warmup_schedule_matches_transformers():
    def rates(make) -> list[float]:
        optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.5)
        schedule = make(optimizer)
        out = []
        for _ in range(12):
            out.append(schedule.get_last_lr()[0])
            optimizer.step()
            schedule.step()
        return out

    ours = rates(lambda opt: linear_warmup_schedule(opt, 3, 10))
    theirs = rates(lambda opt: transformers.get_linear_schedule_with_warmup(opt, 3, 10))
    assert ours == pytest.approx(theirs)
    assert ours[:4] == pytest.approx([0.0, 0.5 / 3, 1.0 / 3, 0.5]) and ours[10] == 0.0
    with pytest.raises(ValueError, match="warmup_steps"):
        linear_warmup_schedule(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1), 5, 4)


def test_make_batches_shuffles_with_the_seed_and_pads_per_batch():
    tokenizer = tiny_tokenizer()
    batches = make_batches(tokenizer, TEXTS, LABELS, batch_size=5, max_length=6, seed=3)
    assert [len(b["labels"]) for b in batches] == [5, 5, 2]
    order = np.random.default_rng(3).permutation(len(TEXTS))
    assert torch.cat([b["labels"] for b in batches]).tolist() == [LABELS[i] for i in order]
    for batch in batches:
        assert batch["input_ids"].shape == batch["attention_mask"].shape
        assert batch["input_ids"].shape[1] <= 6  # truncated
        assert batch["attention_mask"][:, -1].any()  # padded only to the longest in the batch
    same = make_batches(tokenizer, TEXTS, LABELS, batch_size=5, max_length=6, seed=3)
    assert all(
        torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(batches, same, strict=True)
    )
    with pytest.raises(TypeError, match="list of strings"):
        make_batches(tokenizer, "good film", batch_size=2, max_length=8)
    with pytest.raises(ValueError, match="labels"):
        make_batches(tokenizer, TEXTS, LABELS[:3], batch_size=2, max_length=8)


# ----------------------------------------------------------------------------- the loop


def test_finetune_lowers_the_loss_and_predicts_the_training_labels():
    model = tiny_classifier(dropout=0.0)
    batches = make_batches(tiny_tokenizer(), TEXTS, LABELS, batch_size=4, max_length=16, seed=0)
    log = finetune(model, batches, lr=1e-2, warmup_steps=2, epochs=30, seed=0)
    assert len(log.losses) == len(log.learning_rates) == len(log.grad_norms) == 90
    assert np.mean(log.losses[-3:]) < 0.5 * np.mean(log.losses[:3])
    assert log.learning_rates[0] == 0.0 and max(log.learning_rates) == pytest.approx(1e-2)
    predictions = predict_logits(model, batches).argmax(dim=-1)
    assert predictions.tolist() == torch.cat([b["labels"] for b in batches]).tolist()
    assert not model.training


def test_the_first_steps_of_a_longer_schedule_repeat_the_full_run():
    batches = make_batches(tiny_tokenizer(), TEXTS, LABELS, batch_size=2, max_length=16, seed=0)
    full = finetune(tiny_classifier(), batches, lr=1e-3, warmup_steps=2, seed=0)
    first = finetune(
        tiny_classifier(), batches[:3], lr=1e-3, warmup_steps=2, total_steps=len(batches), seed=0
    )
    assert first.losses == full.losses[:3]
    assert first.learning_rates == full.learning_rates[:3]
    with pytest.raises(ValueError, match="total_steps"):
        finetune(tiny_classifier(), batches, lr=1e-3, total_steps=2)


def test_finetune_is_reproducible_with_a_seed_and_clips_gradients():
    batches = make_batches(tiny_tokenizer(), TEXTS, LABELS, batch_size=4, max_length=16, seed=0)
    first, second = tiny_classifier(), tiny_classifier()
    log_a = finetune(first, batches, lr=1e-3, seed=5)
    log_b = finetune(second, batches, lr=1e-3, seed=5)
    assert log_a.losses == log_b.losses
    with pytest.raises(FloatingPointError, match="learning rate"):
        finetune(tiny_classifier(), batches, lr=1e30, max_grad_norm=math.inf, seed=0, epochs=5)


def test_plain_loop_and_trainer_give_the_same_loss_curve(tmp_path: Path):
    """The chapter's claim on a tiny model: same seed, same batches, same losses (<= 1e-5)."""
    tokenizer = tiny_tokenizer()
    start = tiny_classifier(seed=1)  # dropout on: the seeds must line up too
    settings = {"lr": 1e-3, "weight_decay": 0.01, "warmup_steps": 1, "max_grad_norm": 0.5}
    batches = make_batches(tokenizer, TEXTS, LABELS, batch_size=2, max_length=16, seed=0)
    ours = copy.deepcopy(start)
    # One epoch: when the Trainer starts an epoch, its DataLoader draws a number from the
    # global generator, so from the second epoch on its dropout masks differ from ours.
    log = finetune(ours, batches, seed=0, **settings)

    order = np.random.default_rng(0).permutation(len(TEXTS))  # make_batches' shuffle
    dataset = []
    for i in order:
        encoded = tokenizer(TEXTS[i], truncation=True, max_length=16)
        dataset.append(
            {
                "input_ids": encoded["input_ids"],
                "attention_mask": encoded["attention_mask"],
                "labels": LABELS[i],
            }
        )

    class SeedAtFirstStep(transformers.TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 0:
                seed_everything(args.seed)  # where finetune() seeds: right before step 1

    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        num_train_epochs=1,
        learning_rate=settings["lr"],
        weight_decay=settings["weight_decay"],
        warmup_steps=settings["warmup_steps"],
        max_grad_norm=settings["max_grad_norm"],
        lr_scheduler_type="linear",
        optim="adamw_torch",
        train_sampling_strategy="sequential",
        seed=0,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        dataloader_pin_memory=False,
        use_cpu=True,
    )
    theirs = copy.deepcopy(start)
    trainer = transformers.Trainer(
        model=theirs,
        args=args,
        train_dataset=dataset,
        data_collator=transformers.DataCollatorWithPadding(tokenizer),
        callbacks=[SeedAtFirstStep()],
    )
    trainer.remove_callback(transformers.PrinterCallback)
    trainer.train()
    trainer_losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(trainer_losses) == len(log.losses) == 6
    assert np.max(np.abs(np.array(trainer_losses) - np.array(log.losses))) <= 1e-5
    for (name, a), (_, b) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5, msg=name)
