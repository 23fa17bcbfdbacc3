"""The neural networks the book builds, one file per model (Parts II–III on).

- :mod:`~llmzero.models.attention`: scaled dot-product attention and its masks.
- :mod:`~llmzero.models.positional`: sinusoidal, learned and rotary positions.
- :mod:`~llmzero.models.transformer`: multi-head attention, LayerNorm, FFN, the block.
- :mod:`~llmzero.models.gpt`: GPT-2, equal to Hugging Face's on the same weights.
- :mod:`~llmzero.models.llama`: a Llama-style model (RMSNorm, RoPE, SwiGLU, GQA).
- :mod:`~llmzero.models.seq2seq`: an encoder–decoder with cross-attention.
- :mod:`~llmzero.models.bert`: a BERT-style encoder with a masked-language-model head.
- :mod:`~llmzero.models.rnn`: a character-level LSTM language model.
- :mod:`~llmzero.models.embeddings`: sentence embeddings from a pretrained encoder.
- :mod:`~llmzero.models.lora`: LoRA adapters for the linear layers of any model.

Imports: :mod:`llmzero.core`, :mod:`llmzero.text` and :mod:`llmzero.data`.
"""
