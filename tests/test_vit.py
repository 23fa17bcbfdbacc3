import pytest
import torch

from llmzero.models.vit import ViT, ViTConfig, patchify, unpatchify


def test_patchify_then_unpatchify_gives_the_images_back():
    images = torch.randn(3, 2, 8, 8)
    for patch_size in (1, 2, 4, 8):
        patches = patchify(images, patch_size)
        assert patches.shape == (3, (8 // patch_size) ** 2, 2 * patch_size**2)
        assert torch.equal(unpatchify(patches, patch_size, 8, channels=2), images)


def test_patchify_orders_patches_row_by_row():
    image = torch.arange(16.0).reshape(1, 1, 4, 4)
    patches = patchify(image, 2)  # (1, 4, 4)
    assert patches[0, 0].tolist() == [0, 1, 4, 5]
    assert patches[0, 1].tolist() == [2, 3, 6, 7]
    assert patches[0, 2].tolist() == [8, 9, 12, 13]


def test_patchify_rejects_a_patch_size_that_does_not_divide():
    with pytest.raises(ValueError, match="must divide"):
        patchify(torch.zeros(1, 1, 8, 8), 3)
    with pytest.raises(ValueError, match="must divide"):
        ViTConfig(image_size=8, patch_size=3)


def test_vit_shapes_and_encoder_mode():
    torch.manual_seed(0)
    config = ViTConfig(image_size=8, patch_size=2, d_model=32, n_layers=2, n_heads=4)
    model = ViT(config)
    images = torch.randn(5, 1, 8, 8)
    assert model.tokens(images).shape == (5, 1 + 16, 32)
    assert model(images).shape == (5, 10)
    encoder = ViT(ViTConfig(d_model=32, n_classes=0))
    assert encoder(images).shape == (5, 32)
    with pytest.raises(ValueError, match="expected images"):
        model(torch.randn(5, 8, 8))


def test_vit_classification_does_not_depend_on_the_rest_of_the_batch():
    torch.manual_seed(0)
    model = ViT(ViTConfig(d_model=32)).eval()
    images = torch.randn(4, 1, 8, 8)
    torch.testing.assert_close(model(images)[:1], model(images[:1]), rtol=1e-5, atol=1e-6)


def test_vit_learns_to_separate_two_simple_classes():
    torch.manual_seed(0)
    images = torch.zeros(64, 1, 8, 8)
    labels = torch.arange(64) % 2
    images[labels == 0, :, :4] = 1.0  # class 0: top half bright
    images[labels == 1, :, 4:] = 1.0  # class 1: bottom half bright
    images += 0.1 * torch.randn_like(images)
    model = ViT(ViTConfig(patch_size=4, d_model=16, n_layers=1, n_classes=2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert (model(images).argmax(-1) == labels).float().mean() == 1.0
