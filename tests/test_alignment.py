"""Tests for llmzero.training.alignment: sequence log-probs, Bradley–Terry, DPO, GRPO."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from llmzero.models.gpt import GPT, GPTConfig
from llmzero.training import alignment


def _random_logps(seed: int, n: int = 5) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [-10 * torch.rand(n, generator=generator, dtype=torch.float64) for _ in range(4)]


def test_sequence_logprobs_sums_only_the_masked_answer_tokens():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    tokens = torch.randint(0, 7, (2, 5))
    mask = torch.tensor([[0, 0, 1, 1, 0], [0, 1, 1, 1, 1]])
    log_probs = torch.log_softmax(logits, dim=-1)
    expected = [
        sum(log_probs[b, t - 1, tokens[b, t]] for t in range(1, 5) if mask[b, t]) for b in range(2)
    ]
    got = alignment.sequence_logprobs(logits, tokens, mask)
    assert torch.allclose(got, torch.stack(expected), atol=1e-6)


def test_sequence_logprobs_ignores_what_padding_and_prompt_hold():
    torch.manual_seed(0)
    logits = torch.randn(1, 6, 9)
    tokens = torch.randint(0, 9, (1, 6))
    mask = torch.tensor([[0, 0, 1, 1, 0, 0]])
    changed = tokens.clone()
    changed[0, 4:] = (changed[0, 4:] + 1) % 9  # different padding tokens
    assert torch.equal(
        alignment.sequence_logprobs(logits, tokens, mask),
        alignment.sequence_logprobs(logits, changed, mask),
    )


def test_sequence_logprobs_rejects_bad_shapes_and_a_mask_at_position_zero():
    logits, tokens = torch.zeros(2, 4, 5), torch.zeros(2, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="answer_mask"):
        alignment.sequence_logprobs(logits, tokens, torch.ones(2, 3))
    with pytest.raises(ValueError, match="position 0"):
        alignment.sequence_logprobs(logits, tokens, torch.ones(2, 4))
    with pytest.raises(ValueError, match="do not match"):
        alignment.sequence_logprobs(torch.zeros(2, 5, 5), tokens, torch.zeros(2, 4))


def test_bradley_terry_loss_is_logistic_loss_on_reward_differences():
    chosen, rejected = torch.randn(8, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    logistic = F.binary_cross_entropy_with_logits(
        chosen - rejected, torch.ones(8, dtype=torch.float64)
    )
    assert torch.allclose(alignment.bradley_terry_loss(chosen, rejected), logistic, atol=1e-12)
    with pytest.raises(ValueError, match="same shape"):
        alignment.bradley_terry_loss(chosen, rejected[:3])


def test_dpo_loss_equals_the_papers_formula_written_out():
    pol_c, pol_r, ref_c, ref_r = _random_logps(0)
    beta = 0.3
    out = alignment.dpo_loss(pol_c, pol_r, ref_c, ref_r, beta=beta)
    expected = [
        -math.log(1 / (1 + math.exp(-beta * ((pc - rc) - (pr - rr)))))
        for pc, pr, rc, rr in zip(
            pol_c.tolist(), pol_r.tolist(), ref_c.tolist(), ref_r.tolist(), strict=True
        )
    ]
    assert out.loss.item() == pytest.approx(sum(expected) / len(expected), abs=1e-12)
    assert torch.allclose(out.chosen_rewards, beta * (pol_c - ref_c))
    assert torch.allclose(out.margins, out.chosen_rewards - out.rejected_rewards)


def test_dpo_loss_at_the_reference_is_log_two():
    logps = _random_logps(1)
    out = alignment.dpo_loss(logps[0], logps[1], logps[0], logps[1])
    assert out.loss.item() == pytest.approx(math.log(2))


def test_dpo_loss_rejects_nonpositive_beta_and_mismatched_shapes():
    pol_c, pol_r, ref_c, ref_r = _random_logps(2)
    for beta in (0.0, -0.1):
        with pytest.raises(ValueError, match="beta must be > 0"):
            alignment.dpo_loss(pol_c, pol_r, ref_c, ref_r, beta=beta)
    with pytest.raises(ValueError, match="same shape"):
        alignment.dpo_loss(pol_c, pol_r[:2], ref_c, ref_r)


def _tiny_gpt(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8))


def test_dpo_gradients_reach_the_policy_and_never_the_reference():
    policy = _tiny_gpt()
    reference = copy.deepcopy(policy)
    tokens = torch.randint(0, 11, (4, 6), generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[0, 0, 0, 1, 1, 0]] * 4)
    pol = alignment.sequence_logprobs(policy(tokens)[0], tokens, mask)
    ref = alignment.sequence_logprobs(reference(tokens)[0], tokens, mask)
    # Perturb the policy a little so that the loss is not at its symmetric point.
    out = alignment.dpo_loss(pol[:2] + 0.5, pol[2:], ref[:2], ref[2:], beta=0.5)
    out.loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.parameters())
    assert all(p.grad is None for p in reference.parameters())


def test_dpo_loss_matches_trl_dpo_trainer_on_a_tiny_model(tmp_path):
    datasets = pytest.importorskip("datasets")
    transformers = pytest.importorskip("transformers")
    trl = pytest.importorskip("trl")
    tokenizers = pytest.importorskip("tokenizers")

    # A character-level tokenizer built in memory: no download needed.
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789 ?+'")
    vocab = {"<pad>": 0, "<eos>": 1, **{c: i + 2 for i, c in enumerate(chars)}}
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<pad>"))
    backend.pre_tokenizer = tokenizers.pre_tokenizers.Split("", behavior="isolated")
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>"
    )
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    policy = transformers.LlamaForCausalLM(config)
    reference = transformers.LlamaForCausalLM(config)
    rows = [
        {"prompt": "what is 12 + 30?", "chosen": "42", "rejected": "43"},
        {"prompt": "what is 7 + 8?", "chosen": "15", "rejected": "sure, it is 15"},
    ]
    args = trl.DPOConfig(
        output_dir=str(tmp_path), beta=0.2, per_device_train_batch_size=2, report_to="none",
        disable_tqdm=True, activation_checkpointing=False, bf16=False, use_cpu=True,
        dataloader_pin_memory=False,
    )  # fmt: skip
    datasets.disable_progress_bars()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # transformers' deprecation notices
        trainer = trl.DPOTrainer(
            model=policy, ref_model=reference, args=args, processing_class=tokenizer,
            train_dataset=datasets.Dataset.from_list(rows),
        )  # fmt: skip
        batch = next(iter(trainer.get_train_dataloader()))
        trl_loss = trainer.compute_loss(trainer.model, batch)
    with torch.no_grad():
        mask = batch["completion_mask"]
        pol = alignment.sequence_logprobs(
            policy(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
            batch["input_ids"],
            mask,
        )
        ref = alignment.sequence_logprobs(
            reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
            batch["input_ids"],
            mask,
        )
    n = len(rows)  # TRL stacks the chosen answers, then the rejected ones
    ours = alignment.dpo_loss(pol[:n], pol[n:], ref[:n], ref[n:], beta=0.2)
    assert abs(ours.loss.item() - trl_loss.item()) < 1e-5
    margins = trainer._metrics["train"]["rewards/margins"][-1]
    assert abs(ours.margins.mean().item() - margins) < 1e-5


def test_group_advantages_subtract_the_group_mean_and_zero_constant_groups():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    plain = alignment.group_advantages(rewards, group_size=4, scale=False)
    assert torch.allclose(plain, torch.tensor([0.5, -0.5, -0.5, 0.5, 0.0, 0.0, 0.0, 0.0]))
    scaled = alignment.group_advantages(rewards, group_size=4)
    assert torch.allclose(scaled[:4], plain[:4] / (rewards[:4].std() + 1e-4))
    assert torch.equal(scaled[4:], torch.zeros(4))
    with pytest.raises(ValueError, match="groups of 3"):
        alignment.group_advantages(rewards, group_size=3)
    with pytest.raises(ValueError, match="at least 2"):
        alignment.group_advantages(rewards, group_size=1)


def test_policy_gradient_loss_gradient_is_reinforce():
    logps = torch.tensor([-1.0, -2.0, -3.0], requires_grad=True)
    advantages = torch.tensor([1.0, -1.0, 0.5])
    alignment.policy_gradient_loss(logps, advantages).backward()
    assert torch.allclose(logps.grad, -advantages / 3)
    with pytest.raises(ValueError, match="kl_coef"):
        alignment.policy_gradient_loss(logps, advantages, kl_coef=-1.0)


def test_kl_penalty_is_zero_at_the_reference_and_positive_elsewhere():
    policy = torch.log(torch.tensor([[0.5, 0.2, 0.9]]))
    mask = torch.tensor([[1, 1, 0]])
    assert alignment.kl_penalty(policy, policy.clone(), mask).item() == 0.0
    assert alignment.kl_penalty(policy, policy - 0.3, mask).item() > 0.0


def test_reward_model_reads_the_last_real_token_and_ignores_padding():
    model = alignment.RewardModel(_tiny_gpt())
    torch.nn.init.normal_(model.head.weight)
    tokens = torch.tensor([[1, 2, 3, 0, 0], [1, 2, 3, 4, 5]])
    padded_otherwise = tokens.clone()
    padded_otherwise[0, 3:] = 7
    lengths = torch.tensor([3, 5])
    assert torch.allclose(model(tokens, lengths), model(padded_otherwise, lengths))
    alone = model(tokens[:1, :3], lengths[:1])
    assert torch.allclose(model(tokens, lengths)[:1], alone, atol=1e-6)
    with pytest.raises(ValueError, match="lengths"):
        model(tokens, torch.tensor([0, 5]))
