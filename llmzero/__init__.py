"""llmzero: the reusable code of the course *LLMs from Zero*.

Each module is named after one concept and is short enough to read in one sitting:

- :mod:`llmzero.assets` loads data sets and models the same way online and offline.
- :mod:`llmzero.plotting` gives every chapter the same readable figure style.
- :mod:`llmzero.train` is the small training loop used from Part I on.
- :mod:`llmzero.book` holds helpers for the notebooks themselves (e.g. ``glue``).

Later chapters add their models (``gpt``, ``bpe``, ``llama``, ...) here, after building
them step by step in the text.
"""

__version__ = "0.1.0"
