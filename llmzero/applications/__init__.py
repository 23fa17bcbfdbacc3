"""Applications built from the models (Parts VI–VIII): retrieval, chat, extraction, the capstone.

Each module is built step by step in the Part VI chapter that teaches it and checked
against the library practitioners use.

Imports: any lower layer (:mod:`llmzero.training`, :mod:`llmzero.evaluation`,
:mod:`llmzero.models`, :mod:`llmzero.data`, :mod:`llmzero.text`, :mod:`llmzero.core`);
never :mod:`llmzero.book`.
"""
