"""Data sets and models on disk, and the pipelines that prepare text (Parts I–V).

- :mod:`~llmzero.data.assets`: every data set and pretrained model the book uses, fetched
  once, checked by SHA-256 and cached, or read from an offline folder.
- :mod:`~llmzero.data.corpora`: the labelled corpora (sentence polarity, movie reviews)
  as tables, and the book's fixed train/validation/test split.
- :mod:`~llmzero.data.instructions`: the offline instruction set Part V tunes and scores
  models on (shipped with a held-out test split), with preference pairs and
  multiple-choice items derived from it.

Part IV's pretraining-data pipeline, built in the chapter *Data at scale*:

- :mod:`~llmzero.data.crawl`: a small web crawl built from offline text, polluted on
  purpose (boilerplate, spam, duplicates, PII, many languages), with its ground truth.
- :mod:`~llmzero.data.extract`: HTML to clean, NFC-normalized text.
- :mod:`~llmzero.data.langid`: language identification with character n-grams, trained
  and evaluated on the UDHR.
- :mod:`~llmzero.data.quality`: C4 line rules and Gopher's quality and repetition rules.
- :mod:`~llmzero.data.dedup`: exact and near-duplicate detection (MinHash + LSH).
- :mod:`~llmzero.data.pii`: scrubbing e-mail addresses, phone numbers and IP addresses.
- :mod:`~llmzero.data.packing`: token streams with document separators, memory-mapped
  shards, data mixtures.
- :mod:`~llmzero.data.pipeline`: every stage in order, and ``pretraining_corpus()``, the
  cleaned text Part IV's models train on.
- :mod:`~llmzero.data.trove`: the same stages as steps of Hugging Face's ``datatrove``
  (imported only by this module, which needs ``datatrove`` installed).

Imports: :mod:`llmzero.core` and :mod:`llmzero.text`.
"""
