"""Knowledge distillation (Part VII, *Model compression*).

A small *student* learns from a bigger *teacher*'s full next-token distributions ("soft
labels") instead of, or as well as, the one correct token (Hinton et al., 2015). Both
distributions are softened with a temperature ``T``; the KL divergence between them is
multiplied by ``T**2`` so that its gradients keep the same size whatever ``T`` is.

- :func:`distillation_loss`: ``T^2 KL(softmax(teacher / T) || softmax(student / T))``,
  averaged over positions;
- :func:`distillation_step_loss`: ``alpha`` times that plus ``1 - alpha`` times the usual
  cross-entropy with the true next tokens.

Usage::

    from llmzero.training import distillation

    with torch.no_grad():
        teacher_logits, _ = teacher(inputs)                        # (B, T, V)
    student_logits, _ = student(inputs)
    loss = distillation.distillation_step_loss(
        student_logits, teacher_logits, targets, alpha=0.5, temperature=2.0
    )
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["distillation_loss", "distillation_step_loss"]


def distillation_loss(
    student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0
) -> Tensor:
    """``T^2`` times the mean over positions of ``KL(p_teacher^T || p_student^T)``.

    Both logits have shape ``(..., V)``; every leading position counts once. The teacher
    gets no gradient (it is detached).

    Raises:
        ValueError: the shapes differ or ``temperature <= 0``.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher logits "
            f"{tuple(teacher_logits.shape)} must have the same shape (same vocabulary)."
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}.")
    vocab = student_logits.shape[-1]
    student_log_probs = F.log_softmax(student_logits.reshape(-1, vocab).float() / temperature, -1)
    teacher_log_probs = F.log_softmax(
        teacher_logits.detach().reshape(-1, vocab).float() / temperature, -1
    )
    teacher_probs = teacher_log_probs.exp()
    kl = (teacher_probs * (teacher_log_probs - student_log_probs)).sum(dim=-1)  # (N,)
    return temperature**2 * kl.mean()


def distillation_step_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    targets: Tensor,
    alpha: float = 0.5,
    temperature: float = 2.0,
) -> Tensor:
    """``alpha * distillation_loss + (1 - alpha) * cross_entropy(student, targets)``.

    ``targets`` has the logits' leading shape; ``alpha = 0`` is ordinary training and
    ``alpha = 1`` learns from the teacher only.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
    vocab = student_logits.shape[-1]
    hard = F.cross_entropy(student_logits.reshape(-1, vocab).float(), targets.reshape(-1))
    if alpha == 0.0:
        return hard
    soft = distillation_loss(student_logits, teacher_logits, temperature)
    return alpha * soft + (1.0 - alpha) * hard
