"""llmzero: the reusable code of the course *LLMs from Zero*.

The package is layered like the book; each layer imports only the ones before it:

- :mod:`llmzero.core`: math, optimizers, devices and seeds, plotting (Part I).
- :mod:`llmzero.text`: cleaning, tokenizers, word vectors (Parts II–III).
- :mod:`llmzero.data`: data sets and models on disk (``assets``), corpora, data pipelines.
- :mod:`llmzero.models`: one file per model: attention, Transformer, GPT, Llama, ...
- :mod:`llmzero.training`: the training loop and training objectives.
- :mod:`llmzero.evaluation`: metrics.
- :mod:`llmzero.book`: helpers for the notebooks and the site (e.g. ``glue``).

Each module is named after one concept and is short enough to read in one sitting. A
chapter builds its code step by step, then shows it equals the package's version.
"""

__version__ = "0.1.0"
