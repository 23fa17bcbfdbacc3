"""Alignment: from preference pairs and rewards to a policy (Part V).

Built step by step in the chapter *Alignment: from preferences to a policy*, which checks
these versions against its own cell-by-cell code, against the formulas of the papers and,
for DPO, against TRL's ``DPOTrainer``:

- :func:`token_logprobs` and :func:`sequence_logprobs`: the log-probability a causal
  language model gives to the answer tokens of a sequence (prompt and padding masked out);
- :class:`RewardModel` and :func:`bradley_terry_loss`: a scalar reward head on the book's
  GPT, trained on chosen/rejected pairs as in RLHF's reward-modelling step
  (Ouyang et al., 2022);
- :func:`dpo_loss`: Direct Preference Optimization (Rafailov et al., 2023), returning the
  loss with the implicit rewards and their margin;
- :func:`group_advantages`, :func:`kl_penalty` and :func:`policy_gradient_loss`:
  REINFORCE with a group baseline, the core of GRPO (Shao et al., 2024), for rewards that
  a program can check.

Usage::

    from llmzero.training import alignment

    logits, _ = policy(tokens)                                   # (B, T, V)
    logps = alignment.sequence_logprobs(logits, tokens, answer_mask)   # (B,)
    out = alignment.dpo_loss(pol_chosen, pol_rejected, ref_chosen, ref_rejected, beta=0.1)
    out.loss.backward()

Conventions: ``tokens`` is ``(B, T)``; ``logits[:, t]`` is the model's prediction for
``tokens[:, t + 1]`` (what every causal LM returns); an answer mask is ``(B, T)`` with 1 on
the tokens whose log-probability counts (the answer, its end token) and 0 on the prompt and
on padding.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmzero.models.gpt import GPT

__all__ = [
    "DPOOutput",
    "RewardModel",
    "bradley_terry_loss",
    "dpo_loss",
    "group_advantages",
    "kl_penalty",
    "policy_gradient_loss",
    "sequence_logprobs",
    "token_logprobs",
]


def _check_same_shape(**tensors: Tensor) -> None:
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"these tensors must have the same shape, got {shapes}.")


def token_logprobs(logits: Tensor, tokens: Tensor) -> Tensor:
    """``log p(tokens[:, t] | tokens[:, :t])`` for ``t = 1 .. T-1``, shape ``(B, T - 1)``.

    ``logits`` is ``(B, T, V)`` as a causal LM returns it for ``tokens`` ``(B, T)``: the
    logits at position ``t`` score the token at ``t + 1``, so the last position's logits
    are not used and the first token has no log-probability. Computed in float32.
    """
    if logits.dim() != 3 or tokens.dim() != 2:
        raise ValueError(
            f"logits must be (batch, seq, vocab) and tokens (batch, seq), got "
            f"{tuple(logits.shape)} and {tuple(tokens.shape)}."
        )
    if logits.shape[:2] != tokens.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} do not match tokens {tuple(tokens.shape)}: pass the "
            "logits the model returned for exactly these tokens."
        )
    log_probs = F.log_softmax(logits[:, :-1].float(), dim=-1)  # (B, T-1, V)
    targets = tokens[:, 1:].unsqueeze(-1)  # (B, T-1, 1)
    return log_probs.gather(-1, targets).squeeze(-1)  # (B, T-1)


def sequence_logprobs(logits: Tensor, tokens: Tensor, answer_mask: Tensor) -> Tensor:
    """The log-probability of each sequence's answer: ``sum_t mask_t log p(x_t | x_<t)``.

    Args:
        logits: ``(B, T, V)``, the model's output for ``tokens``.
        tokens: ``(B, T)`` token ids: prompt, answer, then padding.
        answer_mask: ``(B, T)``, 1 (or ``True``) on the answer tokens to score, 0 on the
            prompt and padding. Position 0 must be 0: nothing predicts the first token.

    Returns:
        ``(B,)`` float32 sums of the answer tokens' log-probabilities (nats).
    """
    if answer_mask.shape != tokens.shape:
        raise ValueError(
            f"answer_mask {tuple(answer_mask.shape)} must have the shape of tokens "
            f"{tuple(tokens.shape)}."
        )
    if bool(answer_mask[:, 0].any()):
        raise ValueError(
            "answer_mask is set at position 0, which no earlier token predicts: a sequence "
            "must start with at least one prompt token (e.g. a start or prompt token)."
        )
    per_token = token_logprobs(logits, tokens)  # (B, T-1)
    return (per_token * answer_mask[:, 1:].to(per_token.dtype)).sum(dim=-1)  # (B,)


def bradley_terry_loss(chosen_rewards: Tensor, rejected_rewards: Tensor) -> Tensor:
    """The reward-model loss ``mean(-log sigmoid(r_chosen - r_rejected))``.

    Under the Bradley–Terry model the probability that the chosen answer is preferred is
    ``sigmoid(r_chosen - r_rejected)``; this is its negative log-likelihood, i.e. the
    logistic loss on the reward differences with label 1.
    """
    _check_same_shape(chosen_rewards=chosen_rewards, rejected_rewards=rejected_rewards)
    if chosen_rewards.numel() == 0:
        raise ValueError("need at least one pair of rewards.")
    return -F.logsigmoid(chosen_rewards - rejected_rewards).mean()


class DPOOutput(NamedTuple):
    """What :func:`dpo_loss` returns: the loss (scalar, differentiable), and per pair the
    implicit rewards ``beta * (log pi - log pi_ref)`` of both answers and their margin
    (detached, for logging)."""

    loss: Tensor
    chosen_rewards: Tensor
    rejected_rewards: Tensor
    margins: Tensor


def dpo_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    beta: float = 0.1,
) -> DPOOutput:
    """The DPO loss of Rafailov et al. (2023), averaged over the pairs.

    ``-log sigmoid(beta * [(log pi(y_w|x) - log ref(y_w|x)) - (log pi(y_l|x) - log
    ref(y_l|x))])`` for each pair, with sequence log-probabilities from
    :func:`sequence_logprobs` (all ``(B,)``). The reference log-probabilities are
    constants: they are detached, so no gradient reaches the reference model.

    Raises:
        ValueError: ``beta <= 0``, or the four inputs differ in shape.
    """
    if not beta > 0:
        raise ValueError(
            f"beta must be > 0 (it scales how far the policy may move from the reference; "
            f"0.1 is usual), got {beta}."
        )
    _check_same_shape(
        policy_chosen_logps=policy_chosen_logps,
        policy_rejected_logps=policy_rejected_logps,
        ref_chosen_logps=ref_chosen_logps,
        ref_rejected_logps=ref_rejected_logps,
    )
    chosen_logratios = policy_chosen_logps - ref_chosen_logps.detach()  # (B,)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps.detach()  # (B,)
    loss = -F.logsigmoid(beta * (chosen_logratios - rejected_logratios)).mean()
    chosen_rewards = beta * chosen_logratios.detach()
    rejected_rewards = beta * rejected_logratios.detach()
    return DPOOutput(loss, chosen_rewards, rejected_rewards, chosen_rewards - rejected_rewards)


def group_advantages(rewards: Tensor, group_size: int, scale: bool = True) -> Tensor:
    """Advantages with a group baseline: each reward minus the mean of its group.

    ``rewards`` is ``(N,)`` with ``N = n_prompts * group_size``, the answers to one prompt
    next to each other. With ``scale=True`` (GRPO) the differences are divided by the
    group's standard deviation plus ``1e-4``; a group whose answers all got the same reward
    gets advantage 0 either way: it carries no signal about which answer is better.
    """
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D (N,), got shape {tuple(rewards.shape)}.")
    if group_size < 2:
        raise ValueError(f"group_size must be at least 2 for a baseline, got {group_size}.")
    if rewards.numel() % group_size:
        raise ValueError(
            f"{rewards.numel()} rewards do not split into groups of {group_size}: generate "
            "group_size answers for every prompt."
        )
    grouped = rewards.float().view(-1, group_size)  # (n_prompts, G)
    advantages = grouped - grouped.mean(dim=1, keepdim=True)
    if scale:
        advantages = advantages / (grouped.std(dim=1, keepdim=True) + 1e-4)
    return advantages.view(-1)  # (N,)


def kl_penalty(policy_token_logps: Tensor, ref_token_logps: Tensor, mask: Tensor) -> Tensor:
    """A per-sequence estimate of ``KL(pi || pi_ref)`` on sampled tokens, shape ``(N,)``.

    Uses the non-negative estimator ``exp(d) - d - 1`` with ``d = log ref - log pi`` per
    token (Schulman's "k3", as GRPO does), summed over the tokens where ``mask`` is 1. All
    three inputs are ``(N, L)``; gradients flow through the policy only.
    """
    _check_same_shape(policy=policy_token_logps, reference=ref_token_logps, mask=mask)
    delta = ref_token_logps.detach() - policy_token_logps
    per_token = torch.exp(delta) - delta - 1
    return (per_token * mask.to(per_token.dtype)).sum(dim=-1)


def policy_gradient_loss(
    sequence_logps: Tensor,
    advantages: Tensor,
    kl: Tensor | None = None,
    kl_coef: float = 0.0,
) -> Tensor:
    """REINFORCE: ``-mean(A_i * log pi(y_i | x_i)) + kl_coef * mean(KL_i)``.

    Its gradient is the policy-gradient estimate: answers with a positive advantage become
    more likely, those with a negative one less. ``advantages`` are constants (detached);
    ``kl`` (from :func:`kl_penalty`, ``(N,)``) keeps the policy near a reference.
    """
    _check_same_shape(sequence_logps=sequence_logps, advantages=advantages)
    if kl_coef < 0:
        raise ValueError(f"kl_coef must be >= 0, got {kl_coef}.")
    loss = -(advantages.detach() * sequence_logps).mean()
    if kl is not None and kl_coef > 0:
        _check_same_shape(sequence_logps=sequence_logps, kl=kl)
        loss = loss + kl_coef * kl.mean()
    return loss


class RewardModel(nn.Module):
    """A scalar reward on top of the book's :class:`~llmzero.models.gpt.GPT`.

    The GPT's final hidden state at each sequence's last real token goes through a linear
    head to one number: the reward. Start from a fine-tuned policy (``copy.deepcopy`` it),
    as InstructGPT started its reward model from the SFT model. The LM head is not used.
    """

    def __init__(self, backbone: GPT) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.config.n_embd, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """Rewards ``(B,)`` for right-padded ``tokens`` ``(B, T)`` of ``lengths`` ``(B,)``."""
        if tokens.dim() != 2 or lengths.shape != tokens.shape[:1]:
            raise ValueError(
                f"tokens must be (batch, seq) and lengths (batch,), got {tuple(tokens.shape)} "
                f"and {tuple(lengths.shape)}."
            )
        if bool((lengths < 1).any()) or bool((lengths > tokens.shape[1]).any()):
            raise ValueError(f"lengths must be in 1..{tokens.shape[1]}, got {lengths.tolist()}.")
        gpt = self.backbone.transformer
        positions = torch.arange(tokens.shape[1], device=tokens.device)  # (T,)
        hidden = gpt.drop(gpt.wte(tokens) + gpt.wpe(positions))  # (B, T, C)
        for block in gpt.h:
            hidden = block(hidden)  # (B, T, C)
        hidden = gpt.ln_f(hidden)  # (B, T, C)
        last = hidden[torch.arange(tokens.shape[0], device=tokens.device), lengths - 1]  # (B, C)
        return self.head(last).squeeze(-1)  # (B,)
