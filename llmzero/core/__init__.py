"""The foundations every other layer stands on (Part I).

Math and code that any chapter may need, with no knowledge of text, data sets or models:

- :mod:`~llmzero.core.functional`: softmax, log-softmax and cosine similarity, written out.
- :mod:`~llmzero.core.autograd`: a scalar autograd engine (``Value``) and a tiny MLP.
- :mod:`~llmzero.core.information`: entropy, cross-entropy, KL, perplexity, sampling.
- :mod:`~llmzero.core.optim`: SGD, Adam, AdamW and the warmup-cosine schedule.
- :mod:`~llmzero.core.runtime`: choosing a device and seeding a run.
- :mod:`~llmzero.core.plotting`: the book's figure style and shared plots.

Imports: third-party libraries only; nothing else from ``llmzero``.
"""
