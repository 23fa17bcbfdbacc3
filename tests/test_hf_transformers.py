"""Guards for the chapter "Using pretrained models with Hugging Face transformers".

The chapter rebuilds several of the library's steps by hand and shows that they agree with
it on SmolLM2 and MiniLM. These tests repeat the same routes on tiny random models, so that
a new release of ``transformers`` that changes one of them fails here, in seconds, rather
than in the middle of the book build.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")


def _tiny_llama(tmp_path: Path) -> tuple[object, Path]:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=97,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
        pad_token_id=0,
    )
    model = transformers.LlamaForCausalLM(config).eval()
    model.save_pretrained(tmp_path)
    return model, tmp_path


def test_loading_a_checkpoint_by_hand_gives_from_pretrained_logits(tmp_path: Path) -> None:
    _, folder = _tiny_llama(tmp_path)
    reference = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)

    config_json = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config_class = transformers.CONFIG_MAPPING[config_json["model_type"]]
    config = config_class(**config_json)
    model_class = transformers.MODEL_FOR_CAUSAL_LM_MAPPING[config_class]
    with torch.device("meta"):
        skeleton = model_class(config)
    state_dict = safetensors_torch.load_file(folder / "model.safetensors")
    result = skeleton.load_state_dict(state_dict, strict=False, assign=True)
    assert result.missing_keys == ["lm_head.weight"]  # tied: stored once, as the embedding
    assert result.unexpected_keys == []
    skeleton.tie_weights()
    skeleton.model.rotary_emb = type(skeleton.model.rotary_emb)(config)  # a computed buffer
    tensors = [*skeleton.named_parameters(remove_duplicate=False), *skeleton.named_buffers()]
    assert not [name for name, tensor in tensors if tensor.is_meta]

    ids = torch.randint(1, 97, (2, 9))
    with torch.no_grad():
        assert torch.equal(skeleton.eval()(ids).logits, reference.eval()(ids).logits)


def test_safetensors_file_is_a_length_a_json_header_and_the_numbers(tmp_path: Path) -> None:
    model, folder = _tiny_llama(tmp_path)
    weights = folder / "model.safetensors"
    with open(weights, "rb") as handle:
        header_length = struct.unpack("<Q", handle.read(8))[0]
        header = json.loads(handle.read(header_length))
    header.pop("__metadata__", None)
    data_bytes = max(entry["data_offsets"][1] for entry in header.values())
    assert weights.stat().st_size == 8 + header_length + data_bytes
    n_values = sum(int(torch.tensor(entry["shape"]).prod()) for entry in header.values())
    assert n_values == model.num_parameters()  # the tied head is stored and counted once


def _by_hand(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None):
    scores = logits / temperature
    if top_k is not None:
        scores = scores.masked_fill(scores < scores.topk(top_k).values[-1], -float("inf"))
    if top_p is not None:
        probs, order = scores.softmax(dim=-1).sort(descending=True)
        scores = scores.clone()
        scores[order[(probs.cumsum(dim=-1) - probs) >= top_p]] = -float("inf")
    return scores.softmax(dim=-1)


@pytest.mark.parametrize(
    ("temperature", "top_k", "top_p"),
    [(1.0, None, None), (0.5, None, 0.9), (0.7, 50, 0.9), (1.5, 20, None), (1.3, None, 0.5)],
)
def test_temperature_top_k_top_p_by_hand_equal_the_generate_warpers(
    temperature: float, top_k: int | None, top_p: float | None
) -> None:
    from transformers.generation import logits_process as lp

    torch.manual_seed(1)
    logits = 3 * torch.randn(500)
    warpers = [lp.TemperatureLogitsWarper(temperature)]
    if top_k is not None:
        warpers.append(lp.TopKLogitsWarper(top_k))
    if top_p is not None:
        warpers.append(lp.TopPLogitsWarper(top_p))
    ids = torch.zeros(1, 1, dtype=torch.long)
    library = transformers.LogitsProcessorList(warpers)(ids, logits[None].clone())[0]
    ours = _by_hand(logits, temperature, top_k, top_p)
    assert torch.equal(ours > 0, library.softmax(dim=-1) > 0)
    assert torch.allclose(ours, library.softmax(dim=-1), atol=1e-6)


def test_masked_mean_of_a_padded_batch_equals_the_unpadded_sentences() -> None:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
    )
    encoder = transformers.BertModel(config).eval()
    sentences = [torch.randint(5, 50, (length,)) for length in (3, 7, 5)]
    longest = max(len(ids) for ids in sentences)
    ids = torch.stack(
        [torch.cat([s, torch.zeros(longest - len(s), dtype=torch.long)]) for s in sentences]
    )
    mask = (
        torch.arange(longest)[None, :] < torch.tensor([len(s) for s in sentences])[:, None]
    ).long()
    with torch.no_grad():
        states = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        alone = torch.stack(
            [encoder(input_ids=s[None]).last_hidden_state[0].mean(0) for s in sentences]
        )
    weights = mask.unsqueeze(-1).float()
    masked = (states * weights).sum(dim=1) / weights.sum(dim=1)
    assert torch.allclose(masked, alone, atol=1e-5)
    assert not torch.allclose(states.mean(dim=1), alone, atol=1e-3)  # the mask matters


def test_left_padding_keeps_each_prompts_next_token_logits_and_right_padding_does_not(
    tmp_path: Path,
) -> None:
    model, _ = _tiny_llama(tmp_path)
    short, long_ = torch.randint(1, 97, (4,)), torch.randint(1, 97, (9,))
    with torch.no_grad():
        alone = model(short[None]).logits[0, -1]  # the next-token logits of the short prompt
        pads = torch.zeros(5, dtype=torch.long)
        for padded, mask in [
            (torch.cat([pads, short]), torch.cat([torch.zeros(5), torch.ones(4)])),  # left
            (torch.cat([short, pads]), torch.cat([torch.ones(4), torch.zeros(5)])),  # right
        ]:
            batch = torch.stack([padded, long_])
            masks = torch.stack([mask.long(), torch.ones(9, dtype=torch.long)])
            last = model(input_ids=batch, attention_mask=masks).logits[0, -1]
            left = bool(mask[-1] == 1)
            assert torch.allclose(last, alone, atol=1e-5) == left
