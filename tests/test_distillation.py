"""Tests for llmzero.training.distillation: the temperature-softened KL loss."""

import pytest
import torch
import torch.nn.functional as F

from llmzero.training import distillation


def _logits(seed: int, shape=(3, 5, 11)) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 2


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0, 4.0])
def test_loss_equals_torch_kl_div_times_t_squared(temperature):
    student, teacher = _logits(0), _logits(1)
    expected = F.kl_div(
        F.log_softmax(student / temperature, -1).flatten(0, 1),
        F.log_softmax(teacher / temperature, -1).flatten(0, 1),
        reduction="batchmean",
        log_target=True,
    )
    ours = distillation.distillation_loss(student, teacher, temperature)
    assert torch.allclose(ours, temperature**2 * expected, atol=1e-6)


def test_loss_is_zero_for_identical_logits_and_positive_otherwise():
    teacher = _logits(1)
    assert distillation.distillation_loss(teacher.clone(), teacher, 2.0).abs() < 1e-6
    assert distillation.distillation_loss(_logits(0), teacher, 2.0) > 0


def test_teacher_gets_no_gradient_and_student_gradient_is_p_s_minus_p_t():
    student = _logits(0, (4, 7)).requires_grad_()
    teacher = _logits(1, (4, 7)).requires_grad_()
    temperature = 3.0
    distillation.distillation_loss(student, teacher, temperature).backward()
    assert teacher.grad is None
    expected = (
        temperature
        * (F.softmax(student / temperature, -1) - F.softmax(teacher / temperature, -1))
        / 4
    )
    assert torch.allclose(student.grad, expected.detach(), atol=1e-6)


def test_alpha_mixes_the_soft_and_hard_losses():
    student, teacher = _logits(0), _logits(1)
    targets = torch.randint(0, 11, (3, 5), generator=torch.Generator().manual_seed(2))
    hard = F.cross_entropy(student.flatten(0, 1), targets.flatten())
    soft = distillation.distillation_loss(student, teacher, 2.0)
    for alpha in (0.0, 0.3, 1.0):
        mixed = distillation.distillation_step_loss(student, teacher, targets, alpha, 2.0)
        assert torch.allclose(mixed, alpha * soft + (1 - alpha) * hard, atol=1e-6)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="same shape"):
        distillation.distillation_loss(_logits(0), _logits(1, (3, 5, 12)))
    with pytest.raises(ValueError, match="temperature"):
        distillation.distillation_loss(_logits(0), _logits(1), 0.0)
    with pytest.raises(ValueError, match="alpha"):
        distillation.distillation_step_loss(_logits(0), _logits(1), torch.zeros(3, 5).long(), 2)
