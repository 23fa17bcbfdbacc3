"""Measuring how good a model is (Part II on, and Part V's evaluation chapter).

- :mod:`~llmzero.evaluation.metrics`: accuracy, precision, recall, F1, confusion matrices
  and precision–recall curves, each checked against scikit-learn.

Imports: any lower layer (:mod:`llmzero.models`, :mod:`llmzero.data`, :mod:`llmzero.text`,
:mod:`llmzero.core`); never :mod:`llmzero.training` or :mod:`llmzero.book`.
"""
