"""Data sets and models on disk, and the pipelines that prepare text (Parts I–IV).

- :mod:`~llmzero.data.assets`: every data set and pretrained model the book uses, fetched
  once, checked by SHA-256 and cached, or read from an offline folder.
- :mod:`~llmzero.data.corpora`: the labelled corpora (sentence polarity, movie reviews)
  as tables, and the book's fixed train/validation/test split.

Part IV's pretraining-data pipeline (extraction, language ID, quality filters,
deduplication, PII scrubbing, packing into shards) belongs here too.

Imports: :mod:`llmzero.core` and :mod:`llmzero.text`.
"""
