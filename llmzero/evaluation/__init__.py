"""Measuring how good a model is (Part II on, and Part V's evaluation chapter).

- :mod:`~llmzero.evaluation.metrics`: accuracy, precision, recall, F1, confusion matrices
  and precision–recall curves, each checked against scikit-learn.
- :mod:`~llmzero.evaluation.generation`: BLEU and ROUGE from scratch (equal to sacrebleu and
  rouge-score) and n-gram overlap for contamination checks.
- :mod:`~llmzero.evaluation.lm`: perplexity windows and multiple-choice scoring by
  log-probability, for the book's models and Hugging Face causal LMs.
- :mod:`~llmzero.evaluation.bootstrap`: percentile bootstrap confidence intervals.
- :mod:`~llmzero.evaluation.calibration`: reliability bins, expected calibration error and
  temperature scaling, checked against scikit-learn.
- :mod:`~llmzero.evaluation.sequence_labeling`: entity spans from BIO tags and entity-level
  precision, recall and F1, equal to seqeval.
- :mod:`~llmzero.evaluation.interpretability`: residual-stream hooks, the logit lens,
  activation patching and induction scores.

Imports: any lower layer (:mod:`llmzero.models`, :mod:`llmzero.data`, :mod:`llmzero.text`,
:mod:`llmzero.core`); never :mod:`llmzero.training` or :mod:`llmzero.book`.
"""
