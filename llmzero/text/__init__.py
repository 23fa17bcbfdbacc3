"""Turning raw text into units a model can use (Parts II and III).

- :mod:`~llmzero.text.cleaning`: Unicode normalization and regex cleaning.
- :mod:`~llmzero.text.bpe`: byte-level byte-pair encoding, trained and applied.
- :mod:`~llmzero.text.word2vec`: skip-gram with negative sampling and its helpers.

Imports: :mod:`llmzero.core` only.
"""
