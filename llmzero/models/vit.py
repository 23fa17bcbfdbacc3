"""A Vision Transformer (ViT): images cut into patches, read by Transformer blocks.

Part VII's chapter *Multimodal models* builds it step by step (Dosovitskiy et al., 2021):

- :func:`patchify` cuts a batch of images ``(B, C, H, W)`` into ``N = (H/p)(W/p)``
  flattened patches of ``C * p * p`` numbers (:func:`unpatchify` undoes it);
- a linear **patch embedding** maps each patch to ``d_model`` numbers, a learned
  ``[CLS]`` vector is put in front, and learned **position embeddings** are added;
- pre-LN :class:`~llmzero.models.transformer.TransformerBlock` s (no causal mask), a final
  LayerNorm, and a linear head on the ``[CLS]`` vector.

Usage::

    from llmzero.models.vit import ViT, ViTConfig

    model = ViT(ViTConfig(image_size=8, patch_size=2, n_classes=10))
    logits = model(images)          # images: (B, 1, 8, 8) -> (B, 10)
    features = model.encode(images)  # (B, d_model): the final [CLS] vector
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from llmzero.models.transformer import LayerNorm, TransformerBlock

__all__ = ["ViT", "ViTConfig", "patchify", "unpatchify"]


@dataclass
class ViTConfig:
    """The sizes of a :class:`ViT`.

    Args:
        image_size: height and width of the (square) input images, in pixels.
        patch_size: side of the square patches; must divide ``image_size``.
        in_channels: colour channels (1 for greyscale).
        d_model: width of the patch embeddings and the residual stream.
        n_layers: Transformer blocks.
        n_heads: attention heads; must divide ``d_model``.
        n_classes: outputs of the classification head (0: no head, an encoder only).
        dropout: dropout in the blocks.
    """

    image_size: int = 8
    patch_size: int = 2
    in_channels: int = 1
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    n_classes: int = 10
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.patch_size < 1 or self.image_size % self.patch_size:
            raise ValueError(
                f"patch_size {self.patch_size} must divide image_size {self.image_size}: "
                "pick a divisor (e.g. 2 or 4 for 8x8 images)."
            )

    @property
    def n_patches(self) -> int:
        """Patches per image, ``(image_size / patch_size) ** 2``."""
        return (self.image_size // self.patch_size) ** 2

    @property
    def patch_dim(self) -> int:
        """Numbers per flattened patch, ``in_channels * patch_size ** 2``."""
        return self.in_channels * self.patch_size**2


def patchify(images: Tensor, patch_size: int) -> Tensor:
    """Cut images into non-overlapping square patches, row by row.

    Args:
        images: ``(B, C, H, W)``; ``patch_size`` must divide ``H`` and ``W``.
        patch_size: the side ``p`` of a patch.

    Returns:
        ``(B, N, C * p * p)`` with ``N = (H / p) * (W / p)``; patch ``i * (W/p) + j`` is the
        block of rows ``i*p ...`` and columns ``j*p ...``, flattened channel first, then row
        by row.

    Raises:
        ValueError: the input is not 4-dimensional or ``patch_size`` does not divide it.
    """
    if images.dim() != 4:
        raise ValueError(
            f"images must be (batch, channels, height, width), got {tuple(images.shape)}."
        )
    batch, channels, height, width = images.shape
    if patch_size < 1 or height % patch_size or width % patch_size:
        raise ValueError(f"patch_size {patch_size} must divide the image size {height}x{width}.")
    rows, cols = height // patch_size, width // patch_size
    x = images.reshape(batch, channels, rows, patch_size, cols, patch_size)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, rows, cols, C, p, p)
    return x.reshape(batch, rows * cols, channels * patch_size * patch_size)


def unpatchify(patches: Tensor, patch_size: int, image_size: int, channels: int = 1) -> Tensor:
    """Undo :func:`patchify` for square images: ``(B, N, C*p*p)`` -> ``(B, C, H, W)``."""
    batch = patches.shape[0]
    side = image_size // patch_size
    if patches.shape[1:] != (side * side, channels * patch_size**2):
        raise ValueError(
            f"patches of shape {tuple(patches.shape)} do not fit {image_size}x{image_size} "
            f"images with {channels} channel(s) and patch_size {patch_size}."
        )
    x = patches.reshape(batch, side, side, channels, patch_size, patch_size)
    x = x.permute(0, 3, 1, 4, 2, 5)  # (B, C, rows, p, cols, p)
    return x.reshape(batch, channels, image_size, image_size)


class ViT(nn.Module):
    """A Vision Transformer classifier (or encoder, with ``n_classes=0``)."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.patch_embed = nn.Linear(config.patch_dim, d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, config.n_patches + 1, d))
        self.blocks = nn.ModuleList(
            TransformerBlock(d, config.n_heads, dropout=config.dropout)
            for _ in range(config.n_layers)
        )
        self.norm = LayerNorm(d)
        self.head = nn.Linear(d, config.n_classes) if config.n_classes else nn.Identity()

    def tokens(self, images: Tensor) -> Tensor:
        """All final token vectors, ``[CLS]`` first: ``(B, C, H, W)`` -> ``(B, 1 + N, d)``."""
        size = self.config.image_size
        if images.dim() != 4 or images.shape[1:] != (self.config.in_channels, size, size):
            raise ValueError(
                f"expected images of shape (batch, {self.config.in_channels}, {size}, {size}), "
                f"got {tuple(images.shape)}."
            )
        x = self.patch_embed(patchify(images, self.config.patch_size))  # (B, N, d)
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (B, 1, d)
        x = torch.cat([cls, x], dim=1) + self.pos_embed  # (B, 1 + N, d)
        for block in self.blocks:
            x = block(x)  # (B, 1 + N, d)
        return self.norm(x)

    def encode(self, images: Tensor) -> Tensor:
        """The final ``[CLS]`` vector of each image, ``(B, d_model)``."""
        return self.tokens(images)[:, 0]

    def forward(self, images: Tensor) -> Tensor:
        """Class logits ``(B, n_classes)`` (or ``(B, d_model)`` features without a head)."""
        return self.head(self.encode(images))
