r"""A CLIP-style dual encoder and its symmetric contrastive (InfoNCE) loss.

Part VII's chapter *Multimodal models* trains it on digit images and short generated
captions (Radford et al., 2021). A batch holds ``B`` matching (image, text) pairs; both
encoders map into one space, the vectors are L2-normalised, and the logits are the scaled
cosine similarities ``L = s * I T^T``. The loss is the mean of two cross-entropies, each
image against all ``B`` texts and each text against all ``B`` images, with the matching
pair (the diagonal) as the target:

.. math::
    \mathcal{L} = -\frac{1}{2B} \sum_{i=1}^{B} \left(
        \log \frac{e^{L_{ii}}}{\sum_j e^{L_{ij}}} + \log \frac{e^{L_{ii}}}{\sum_j e^{L_{ji}}}
    \right)

Usage::

    from llmzero.models.clip import DualEncoder, TextEncoder, contrastive_loss

    model = DualEncoder(image_encoder, TextEncoder(vocab_size, max_len), image_dim=64)
    logits = model(images, token_ids, attention_mask)  # (B, B)
    loss = contrastive_loss(logits)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmzero.models.transformer import LayerNorm, TransformerBlock

__all__ = ["DualEncoder", "TextEncoder", "contrastive_loss", "similarity_logits"]


def similarity_logits(image_emb: Tensor, text_emb: Tensor, logit_scale: float | Tensor) -> Tensor:
    """Scaled cosine similarities: ``(B_i, D)``, ``(B_t, D)`` -> ``(B_i, B_t)``."""
    if image_emb.dim() != 2 or text_emb.dim() != 2 or image_emb.shape[1] != text_emb.shape[1]:
        raise ValueError(
            f"expected (batch, dim) embeddings of the same dim, got {tuple(image_emb.shape)} "
            f"and {tuple(text_emb.shape)}."
        )
    image_emb = image_emb / image_emb.norm(dim=-1, keepdim=True)
    text_emb = text_emb / text_emb.norm(dim=-1, keepdim=True)
    return logit_scale * image_emb @ text_emb.T


def contrastive_loss(logits: Tensor) -> Tensor:
    """Symmetric InfoNCE of a square logit matrix whose diagonal holds the matching pairs.

    Written with ``logsumexp``: the image-to-text term normalises each row, the
    text-to-image term each column. A stack of matrices ``(G, B, B)`` (independent groups
    of pairs) gives the mean over the groups.

    Raises:
        ValueError: ``logits`` is not a square matrix (or a stack of them).
    """
    if logits.dim() < 2 or logits.shape[-1] != logits.shape[-2]:
        raise ValueError(
            f"logits must be a square (batch, batch) matrix, got {tuple(logits.shape)}."
        )
    diagonal = logits.diagonal(dim1=-2, dim2=-1)  # (..., B)
    image_to_text = (logits.logsumexp(dim=-1) - diagonal).mean()  # each image vs all texts
    text_to_image = (logits.logsumexp(dim=-2) - diagonal).mean()  # each text vs all images
    return (image_to_text + text_to_image) / 2


class TextEncoder(nn.Module):
    """A tiny Transformer text encoder: token and position embeddings, pre-LN blocks, a
    final LayerNorm and the mean over the real (unpadded) tokens.

    Args:
        vocab_size: token ids are ``0 ... vocab_size - 1``.
        max_len: the longest sequence.
        d_model: width; also the output size.
        n_layers: Transformer blocks.
        n_heads: attention heads.
    """

    def __init__(
        self, vocab_size: int, max_len: int, d_model: int = 64, n_layers: int = 1, n_heads: int = 4
    ) -> None:
        super().__init__()
        self.max_len = max_len
        self.token_embed = nn.Embedding(vocab_size, d_model)
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, max_len, d_model))
        self.blocks = nn.ModuleList(TransformerBlock(d_model, n_heads) for _ in range(n_layers))
        self.norm = LayerNorm(d_model)

    def forward(self, token_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """``(B, T)`` ids and 0/1 mask -> ``(B, d_model)``."""
        if token_ids.shape[1] > self.max_len:
            raise ValueError(f"sequence length {token_ids.shape[1]} > max_len {self.max_len}.")
        x = self.token_embed(token_ids) + self.pos_embed[:, : token_ids.shape[1]]  # (B, T, d)
        for block in self.blocks:
            x = block(x, attention_mask=attention_mask)
        x = self.norm(x)
        weights = attention_mask.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)


class DualEncoder(nn.Module):
    """An image encoder and a text encoder, each followed by a linear projection into a
    shared ``embed_dim`` space, and a learned temperature (stored as ``log`` of the scale,
    initialised to ``1 / 0.07`` as in CLIP).

    Args:
        image_encoder: maps images to ``(B, image_dim)``.
        text_encoder: maps ``(token_ids, attention_mask)`` to ``(B, text_dim)``.
        image_dim: output size of the image encoder.
        text_dim: output size of the text encoder.
        embed_dim: size of the shared space.
    """

    def __init__(
        self,
        image_encoder: nn.Module,
        text_encoder: nn.Module,
        image_dim: int,
        text_dim: int,
        embed_dim: int = 64,
    ) -> None:
        super().__init__()
        self.image_encoder, self.text_encoder = image_encoder, text_encoder
        self.image_proj = nn.Linear(image_dim, embed_dim, bias=False)
        self.text_proj = nn.Linear(text_dim, embed_dim, bias=False)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def logit_scale(self) -> Tensor:
        """The learned scale ``exp(log_scale)``, capped at 100 as in CLIP."""
        return self.log_scale.clamp(max=math.log(100)).exp()

    def encode_image(self, images: Tensor) -> Tensor:
        """``images`` -> unit vectors ``(B, embed_dim)``."""
        return F.normalize(self.image_proj(self.image_encoder(images)), dim=-1)

    def encode_text(self, token_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """``(B, T)`` ids and mask -> unit vectors ``(B, embed_dim)``."""
        return F.normalize(self.text_proj(self.text_encoder(token_ids, attention_mask)), dim=-1)

    def forward(self, images: Tensor, token_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """The ``(B, B)`` logit matrix of a batch of matching pairs."""
        return similarity_logits(
            self.encode_image(images),
            self.encode_text(token_ids, attention_mask),
            self.logit_scale(),
        )
