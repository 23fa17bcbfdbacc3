"""Tests for llmzero.training.sft: chat templates, the loss mask, padding and packing, the
SFT step, greedy decoding and exact-match scoring."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from llmzero.data.instructions import Instruction
from llmzero.models.gpt import GPT, GPTConfig
from llmzero.training import sft

TOKENIZER = sft.ByteChatTokenizer()

EXAMPLES = [
    Instruction("t-0", "addition", "What is 47 + 38?", "85"),
    Instruction("t-1", "antonym", "What is the opposite of 'uneven'?", "even"),
    Instruction(
        "t-2",
        "poet",
        "Who wrote this line of Tang poetry? 滄海月明珠有淚，藍田日暖玉生煙。",
        "李商隱",
    ),
    Instruction("t-3", "language", "Which language is this? autres moyens de protection", "French"),
]


def tiny_gpt(seed: int = 0, block_size: int = 128) -> GPT:
    torch.manual_seed(seed)
    config = GPTConfig(
        vocab_size=TOKENIZER.vocab_size, block_size=block_size, n_layer=2, n_head=2, n_embd=16
    )
    return GPT(config).eval()


def tokenized(examples=EXAMPLES) -> list[sft.TokenizedChat]:
    return [
        sft.tokenize_chat(sft.instruction_messages(e), sft.BOOK_TEMPLATE, TOKENIZER)
        for e in examples
    ]


# -- templates and tokenisation -------------------------------------------------------------


def test_book_template_renders_turns_with_end_tokens() -> None:
    text = sft.BOOK_TEMPLATE.render(sft.instruction_messages(EXAMPLES[0]))
    assert text == "<|user|>What is 47 + 38?<|end|><|assistant|>85<|end|>"
    prompt = sft.BOOK_TEMPLATE.render(sft.instruction_messages(EXAMPLES[0], False), True)
    assert prompt == "<|user|>What is 47 + 38?<|end|><|assistant|>"


def test_byte_tokenizer_round_trips_and_keeps_special_tokens_whole() -> None:
    text = "<|user|>滄海 + 85<|end|>"
    ids = TOKENIZER.encode(text)
    assert ids[0] == TOKENIZER.special_ids["<|user|>"] and ids[-1] == TOKENIZER.end_id
    assert TOKENIZER.decode(ids) == text
    assert max(ids) < TOKENIZER.vocab_size
    with pytest.raises(ValueError, match="outside the vocabulary"):
        TOKENIZER.decode([TOKENIZER.vocab_size])


def test_bpe_chat_tokenizer_splits_digits_and_round_trips() -> None:
    text = " ".join(e.prompt + " " + e.response for e in EXAMPLES) * 20
    tokenizer = sft.BPEChatTokenizer.train(text, vocab_size=300)
    assert tokenizer.vocab_size == 300 + len(tokenizer.special_tokens)
    assert tokenizer.pad_id == tokenizer.vocab_size - 1
    ids = tokenizer.encode("<|user|>What is 47 + 38?<|end|><|assistant|>85<|end|>")
    assert tokenizer.decode(ids) == "<|user|>What is 47 + 38?<|end|><|assistant|>85<|end|>"
    pieces = [tokenizer.decode([i]) for i in tokenizer.encode("12345 + 85")]
    assert all(sum(ch.isdigit() for ch in piece) <= 1 for piece in pieces)  # one digit a token
    chat = sft.tokenize_chat(sft.instruction_messages(EXAMPLES[2]), sft.BOOK_TEMPLATE, tokenizer)
    assert tokenizer.decode(chat.input_ids) == sft.BOOK_TEMPLATE.render(
        sft.instruction_messages(EXAMPLES[2])
    )
    with pytest.raises(ValueError, match="exceed"):
        sft.BPEChatTokenizer.train(text, vocab_size=100)


def test_tokenized_chat_equals_encoding_the_rendered_text() -> None:
    for example in EXAMPLES:
        messages = sft.instruction_messages(example)
        chat = sft.tokenize_chat(messages, sft.BOOK_TEMPLATE, TOKENIZER)
        assert chat.input_ids == TOKENIZER.encode(sft.BOOK_TEMPLATE.render(messages))


def test_only_the_answer_and_its_end_token_are_labelled() -> None:
    for example, chat in zip(EXAMPLES, tokenized(), strict=True):
        trained = [i for i, label in zip(chat.input_ids, chat.labels, strict=True) if label != -100]
        assert TOKENIZER.decode(trained) == example.response + "<|end|>"
        # the labelled tokens are the last ones: the reply closes the conversation
        assert chat.labels[-chat.n_trained :] == chat.input_ids[-chat.n_trained :]


def test_bad_messages_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="role"):
        sft.tokenize_chat([{"role": "robot", "content": "hi"}], sft.BOOK_TEMPLATE, TOKENIZER)
    with pytest.raises(ValueError, match="at least one message"):
        sft.tokenize_chat([], sft.BOOK_TEMPLATE, TOKENIZER)
    with pytest.raises(ValueError, match="'role' and 'content'"):
        sft.tokenize_chat([{"content": "hi"}], sft.BOOK_TEMPLATE, TOKENIZER)


def test_chatml_template_matches_apply_chat_template_of_a_tokenizer() -> None:
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    from tokenizers import decoders, models, pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())  # every byte a token of its own
    vocab = {symbol: index for index, symbol in enumerate(alphabet)}
    backend = tokenizers.Tokenizer(models.BPE(vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=backend)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.chat_template = (
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
        "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
        "Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
        "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
        "{{ '<|im_start|>assistant\n' }}{% endif %}"
    )  # SmolLM2-Instruct's template
    codec = sft.hf_codec(tokenizer)
    for example in EXAMPLES:
        messages = sft.instruction_messages(example)
        ours = sft.tokenize_chat(messages, sft.SMOLLM2_TEMPLATE, codec)
        theirs = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)
        assert ours.input_ids == list(theirs["input_ids"])
        assert sft.SMOLLM2_TEMPLATE.render(messages) == tokenizer.apply_chat_template(
            messages, tokenize=False
        )
        prompt = sft.tokenize_chat(messages[:1], sft.SMOLLM2_TEMPLATE, codec, True)
        expected = tokenizer.apply_chat_template(
            messages[:1], tokenize=True, add_generation_prompt=True, return_dict=True
        )
        assert prompt.input_ids == list(expected["input_ids"])
        # the labelled tokens are the reply and <|im_end|>, not the newline after it
        trained = [i for i, label in zip(ours.input_ids, ours.labels, strict=True) if label != -100]
        assert codec.decode(trained) == example.response + "<|im_end|>"


# -- the loss mask --------------------------------------------------------------------------


def test_prompt_tokens_never_contribute_to_the_loss() -> None:
    batch = sft.pad_collate(tokenized(), pad_id=TOKENIZER.pad_id)
    torch.manual_seed(0)
    logits = torch.randn(*batch["input_ids"].shape, TOKENIZER.vocab_size, requires_grad=True)
    loss = sft.sft_loss(logits, batch["labels"])
    loss.backward()
    predicts_prompt = batch["labels"][:, 1:] == -100  # positions whose next token is not trained
    row_grads = logits.grad[:, :-1].abs().sum(dim=-1)  # (B, T-1)
    assert torch.all(row_grads[predicts_prompt] == 0)
    assert torch.all(row_grads[~predicts_prompt] > 0)
    assert torch.all(logits.grad[:, -1] == 0)  # the last position predicts nothing

    # Changing the logits at prompt positions, or the prompt's labels, changes nothing.
    scrambled = logits.detach().clone()
    scrambled[:, :-1][predicts_prompt] = torch.randn(
        int(predicts_prompt.sum()), TOKENIZER.vocab_size
    )
    assert torch.equal(sft.sft_loss(scrambled, batch["labels"]), loss.detach())


def test_sft_loss_is_the_mean_over_assistant_tokens_only() -> None:
    batch = sft.pad_collate(tokenized(), pad_id=TOKENIZER.pad_id)
    torch.manual_seed(1)
    logits = torch.randn(*batch["input_ids"].shape, TOKENIZER.vocab_size)
    terms = []
    for row in range(logits.shape[0]):
        for t in range(logits.shape[1] - 1):
            label = batch["labels"][row, t + 1].item()
            if label != -100:
                terms.append(-F.log_softmax(logits[row, t], dim=-1)[label])
    assert torch.allclose(
        sft.sft_loss(logits, batch["labels"]), torch.stack(terms).mean(), atol=1e-6
    )
    assert len(terms) == sum(chat.n_trained for chat in tokenized())


def test_sft_loss_equals_the_gpts_own_loss_with_prompt_targets_ignored() -> None:
    model = tiny_gpt()
    batch = sft.pad_collate(tokenized(), pad_id=TOKENIZER.pad_id)
    targets = batch["labels"][:, 1:].clone()  # next-token targets, as the GPT expects them
    targets[targets == -100] = -1  # the GPT's own ignore value
    _, expected = model(batch["input_ids"][:, :-1], targets)
    ours = sft.sft_loss(sft.causal_lm_logits(model, batch), batch["labels"])
    assert torch.allclose(ours, expected, atol=1e-6)
    # Counting the prompt too (every label = the input) gives a different loss and gradient.
    everything = sft.sft_loss(sft.causal_lm_logits(model, batch), batch["input_ids"])
    assert not torch.allclose(everything, ours)


def test_sft_loss_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="no position is labelled"):
        sft.sft_loss(torch.zeros(1, 3, 5), torch.full((1, 3), -100))
    with pytest.raises(ValueError, match="logits must be"):
        sft.sft_loss(torch.zeros(1, 3, 5), torch.zeros(1, 4, dtype=torch.long))


# -- padding and packing --------------------------------------------------------------------


def test_pad_collate_pads_on_the_right_with_ignored_labels() -> None:
    chats = tokenized()
    batch = sft.pad_collate(chats, pad_id=TOKENIZER.pad_id)
    lengths = [len(chat) for chat in chats]
    assert batch["input_ids"].shape == (len(chats), max(lengths))
    assert batch["attention_mask"].sum(dim=1).tolist() == lengths
    assert torch.all(batch["labels"][batch["attention_mask"] == 0] == -100)
    waste = 1 - sum(lengths) / (len(chats) * max(lengths))
    assert sft.padding_waste(batch) == pytest.approx(waste)
    with pytest.raises(ValueError, match="shorter than the longest"):
        sft.pad_collate(chats, pad_id=TOKENIZER.pad_id, pad_to=3)


def test_pack_collate_keeps_every_token_and_restarts_positions() -> None:
    chats = tokenized() * 3
    batch = sft.pack_collate(chats, block_size=128, pad_id=TOKENIZER.pad_id)
    real = batch["attention_mask"].bool()
    assert batch["input_ids"][real].tolist() == [i for chat in chats for i in chat.input_ids]
    starts = batch["position_ids"] == 0
    assert int((starts & real).sum()) == len(chats)
    assert torch.all(batch["labels"][starts & real] == -100)  # no prediction across examples
    assert sft.padding_waste(batch) < sft.padding_waste(sft.pad_collate(chats, TOKENIZER.pad_id))
    with pytest.raises(ValueError, match="does not fit"):
        sft.pack_collate(chats, block_size=10, pad_id=TOKENIZER.pad_id)


def test_packed_rows_with_document_mask_give_the_logits_of_separate_examples() -> None:
    model = tiny_gpt()
    chats = tokenized()
    batch = sft.pack_collate(chats, block_size=128, pad_id=TOKENIZER.pad_id)
    with torch.no_grad():
        packed = sft.causal_lm_logits(model, batch)
        naive = model(batch["input_ids"])[0]  # one causal sequence: examples see each other
        for row in range(batch["input_ids"].shape[0]):
            for doc in batch["document_ids"][row].unique().tolist():
                if doc < 0:
                    continue
                where = batch["document_ids"][row] == doc
                alone = model(batch["input_ids"][row][where][None])[0][0]
                assert torch.allclose(packed[row][where], alone, atol=1e-5)
                if batch["position_ids"][row][where][0] == 0 and where.nonzero()[0] > 0:
                    assert not torch.allclose(naive[row][where], alone, atol=1e-3)


def test_gpt_forward_without_positions_is_the_models_forward() -> None:
    model = tiny_gpt()
    ids = torch.randint(0, TOKENIZER.vocab_size, (2, 20))
    with torch.no_grad():
        assert torch.equal(sft.gpt_forward(model, ids), model(ids)[0])
    with pytest.raises(ValueError, match="both"):
        sft.gpt_forward(model, ids, position_ids=torch.zeros_like(ids))


# -- training step --------------------------------------------------------------------------


def test_sft_steps_lower_the_loss_on_a_fixed_batch() -> None:
    model = tiny_gpt()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    batch = sft.pad_collate(tokenized(), pad_id=TOKENIZER.pad_id)
    losses = [sft.sft_step(model, optimizer, batch) for _ in range(15)]
    assert losses[-1] < 0.5 * losses[0]


def test_packed_and_padded_batches_give_the_same_loss() -> None:
    model = tiny_gpt()
    chats = tokenized()
    padded = sft.pad_collate(chats, pad_id=TOKENIZER.pad_id)
    packed = sft.pack_collate(chats, block_size=128, pad_id=TOKENIZER.pad_id)
    with torch.no_grad():
        a = sft.sft_loss(sft.causal_lm_logits(model, padded), padded["labels"])
        b = sft.sft_loss(sft.causal_lm_logits(model, packed), packed["labels"])
    assert torch.allclose(a, b, atol=1e-5)


# -- greedy decoding and exact match ------------------------------------------------------


def _naive_greedy(model: GPT, prompt: list[int], max_new_tokens: int) -> list[int]:
    ids, out = torch.tensor([prompt]), []
    for _ in range(max_new_tokens):
        token = model(ids)[0][0, -1].argmax().item()
        if token == TOKENIZER.end_id:
            break
        out.append(token)
        ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    return out


def test_cached_batched_greedy_equals_one_prompt_at_a_time() -> None:
    model = tiny_gpt(seed=3)
    prompts = [
        sft.tokenize_chat(
            sft.instruction_messages(e, False), sft.BOOK_TEMPLATE, TOKENIZER, True
        ).input_ids
        for e in EXAMPLES
    ]
    outputs = sft.greedy_generate(model, prompts, 12, TOKENIZER.end_id, TOKENIZER.pad_id)
    for prompt, output in zip(prompts, outputs, strict=True):
        assert output == _naive_greedy(model, prompt, 12)
    with pytest.raises(ValueError, match="block_size"):
        sft.greedy_generate(model, prompts, 1000, TOKENIZER.end_id, TOKENIZER.pad_id)
    with pytest.raises(ValueError, match="empty"):
        sft.greedy_generate(model, [[]], 3, TOKENIZER.end_id, TOKENIZER.pad_id)
    # A pad id that also occurs in prompts (SmolLM2 pads with <|im_end|>) changes nothing.
    same = sft.greedy_generate(model, prompts, 12, TOKENIZER.end_id, prompts[0][-2])
    assert same == outputs


def test_a_model_trained_on_the_examples_answers_them_exactly() -> None:
    model = tiny_gpt()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    batch = sft.pad_collate(tokenized(), pad_id=TOKENIZER.pad_id)
    for _ in range(150):
        sft.sft_step(model, optimizer, batch)
    predictions = sft.evaluate_exact_match(
        model, EXAMPLES, sft.BOOK_TEMPLATE, TOKENIZER, TOKENIZER.end_id, TOKENIZER.pad_id
    )
    assert [p.example for p in predictions] == EXAMPLES
    assert all(p.correct for p in predictions), [p.answer for p in predictions]
    scores = sft.accuracy_by_task(predictions)
    assert scores["all"] == 1.0 and set(scores) == {e.task for e in EXAMPLES} | {"all"}


def test_accuracy_by_task_counts_exact_matches() -> None:
    predictions = [
        sft.Prediction(EXAMPLES[0], "85.", True),
        sft.Prediction(EXAMPLES[0], "86", False),
        sft.Prediction(EXAMPLES[1], "even", True),
    ]
    assert sft.accuracy_by_task(predictions) == {"addition": 0.5, "antonym": 1.0, "all": 2 / 3}
    with pytest.raises(ValueError):
        sft.accuracy_by_task([])
