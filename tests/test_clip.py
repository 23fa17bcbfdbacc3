import math

import pytest
import torch
import torch.nn.functional as F

from llmzero.models.clip import DualEncoder, TextEncoder, contrastive_loss, similarity_logits
from llmzero.models.vit import ViT, ViTConfig


def test_contrastive_loss_equals_cross_entropy_both_ways():
    torch.manual_seed(0)
    logits = 3 * torch.randn(7, 7)
    targets = torch.arange(7)
    expected = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
    torch.testing.assert_close(contrastive_loss(logits), expected, rtol=1e-6, atol=1e-6)


def test_contrastive_loss_of_a_stack_is_the_mean_over_groups():
    torch.manual_seed(2)
    logits = torch.randn(3, 5, 5)
    expected = torch.stack([contrastive_loss(group) for group in logits]).mean()
    torch.testing.assert_close(contrastive_loss(logits), expected)


def test_contrastive_loss_of_uniform_logits_is_log_batch():
    assert contrastive_loss(torch.zeros(5, 5)).item() == pytest.approx(math.log(5))


def test_contrastive_loss_goes_to_zero_for_confident_correct_pairs():
    assert contrastive_loss(100 * torch.eye(4)).item() < 1e-6
    assert contrastive_loss(100 * (1 - torch.eye(4))).item() > 50  # confidently wrong


def test_contrastive_loss_is_symmetric_under_transpose_and_joint_permutation():
    torch.manual_seed(1)
    logits = torch.randn(6, 6)
    perm = torch.randperm(6)
    torch.testing.assert_close(contrastive_loss(logits), contrastive_loss(logits.T))
    torch.testing.assert_close(contrastive_loss(logits), contrastive_loss(logits[perm][:, perm]))


def test_contrastive_loss_rejects_a_non_square_matrix():
    with pytest.raises(ValueError, match="square"):
        contrastive_loss(torch.zeros(3, 4))


def test_similarity_logits_are_scaled_cosines():
    torch.manual_seed(0)
    images, texts = torch.randn(3, 8), torch.randn(4, 8)
    logits = similarity_logits(images, texts, 10.0)
    expected = 10 * F.cosine_similarity(images[:, None], texts[None], dim=-1)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="same dim"):
        similarity_logits(images, torch.randn(4, 5), 1.0)


def test_text_encoder_ignores_padding():
    torch.manual_seed(0)
    encoder = TextEncoder(vocab_size=20, max_len=6, d_model=16).eval()
    ids = torch.tensor([[3, 4, 5, 0, 0, 0]])
    other_padding = torch.tensor([[3, 4, 5, 9, 9, 9]])
    mask = torch.tensor([[1, 1, 1, 0, 0, 0]])
    torch.testing.assert_close(encoder(ids, mask), encoder(other_padding, mask))


def test_dual_encoder_shapes_and_unit_vectors():
    torch.manual_seed(0)
    model = DualEncoder(
        ViT(ViTConfig(d_model=16, n_classes=0)),
        TextEncoder(vocab_size=20, max_len=6, d_model=16),
        image_dim=16,
        text_dim=16,
        embed_dim=8,
    )
    images = torch.randn(4, 1, 8, 8)
    ids, mask = torch.randint(1, 20, (4, 6)), torch.ones(4, 6, dtype=torch.long)
    logits = model(images, ids, mask)
    assert logits.shape == (4, 4)
    norms = model.encode_image(images).norm(dim=-1)
    torch.testing.assert_close(norms, torch.ones(4))
    assert logits.abs().max() <= 1 / 0.07 + 1e-4
