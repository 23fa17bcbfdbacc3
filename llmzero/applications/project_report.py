"""The capstone's second half (Part VIII): stronger models, the final table, errors, the card.

Everything here works for any set of string labels (the book's ``"pos"``/``"neg"``, or the
reader's own CSV through :mod:`llmzero.applications.sentiment_project`):

- :func:`positive_negative_labels` and :func:`label_words`: which labels a sentiment
  lexicon can serve, and the words an LLM is asked to continue with (``"pos"`` becomes
  ``" positive"``; other labels are used as they are);
- :func:`score_label_words`: ``log p(label word | prompt)`` of a causal LM for many texts
  at once (right-padded batches read at each prompt's last token); equal to
  :func:`llmzero.evaluation.lm.option_log_probs`, which it falls back to when a label word
  is more than one token;
- :func:`encoder_states` and :class:`TopBlockClassifier`: fine-tune only the top block of
  a BERT-style encoder and a head, on the cached inputs of that block (the frozen lower
  blocks run once);
- :func:`evaluate_run`, :func:`results_table` and :func:`paired_difference`: accuracy,
  macro-F1 and ECE, each with a bootstrap interval, and the paired difference of two
  models scored on the same texts with the same resamples;
- :data:`PHENOMENON_RULES`, :func:`tag_phenomena` and :func:`error_rates_by_tag`: error
  analysis by phenomena tagged with simple, stated rules;
- :class:`ModelCard` and :meth:`ModelCard.to_markdown`: a model card
  (Mitchell et al., 2019) rendered from computed values.

Usage::

    from llmzero.applications import project_report as report

    run = report.evaluate_run("TF-IDF + LR", y_test, predicted, probabilities, classes)
    table = report.results_table([run, ...])           # one row per model, with 95% CIs
    report.paired_difference(y_test, predicted_a, predicted_b)  # macro-F1 of a minus b
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from llmzero.evaluation import bootstrap, calibration, metrics
from llmzero.evaluation import lm as lm_eval
from llmzero.models.embeddings import mean_pool
from llmzero.training.finetune import ClassificationHead, make_batches

__all__ = [
    "LABEL_WORDS",
    "METRICS",
    "PHENOMENON_RULES",
    "ModelCard",
    "ModelRun",
    "TopBlockClassifier",
    "encoder_states",
    "error_rates_by_tag",
    "evaluate_run",
    "label_words",
    "pad_states",
    "paired_difference",
    "positive_negative_labels",
    "results_table",
    "score_label_words",
    "tag_phenomena",
]

POSITIVE_NAMES = ("pos", "positive")
NEGATIVE_NAMES = ("neg", "negative")
LABEL_WORDS = {"pos": "positive", "neg": "negative"}
"""Abbreviated label names and the word an LLM is asked for instead."""


def positive_negative_labels(labels: Sequence[str]) -> tuple[str, str] | None:
    """``(positive_label, negative_label)`` if the labels are exactly one positive and one
    negative name (``pos``/``positive`` and ``neg``/``negative``, any case); else None.

    A sentiment lexicon such as VADER gives one polarity score, so it can only serve such
    data; rename your labels to these names (or map them) to use it.
    """
    distinct = sorted(set(labels))
    if len(distinct) != 2:
        return None
    positive = [label for label in distinct if label.casefold() in POSITIVE_NAMES]
    negative = [label for label in distinct if label.casefold() in NEGATIVE_NAMES]
    if len(positive) != 1 or len(negative) != 1:
        return None
    return positive[0], negative[0]


def label_words(classes: Sequence[str]) -> list[str]:
    """The continuation an LLM is scored on for each class, with a leading space.

    ``"pos"`` and ``"neg"`` become ``" positive"`` and ``" negative"``; any other label is
    used as written (``"mixed"`` becomes ``" mixed"``), underscores read as spaces.
    """
    words = [" " + LABEL_WORDS.get(c.casefold(), c).replace("_", " ").strip() for c in classes]
    if len(set(words)) != len(words):
        pairs = dict(zip(classes, words, strict=True))
        raise ValueError(f"two classes give the same label word: {pairs}; rename the labels.")
    return words


@torch.inference_mode()
def score_label_words(
    model: nn.Module,
    tokenizer,
    prompts: Sequence[str],
    words: Sequence[str],
    batch_size: int = 16,
) -> np.ndarray:
    """``log p(word | prompt)`` for every prompt and word: an array ``(n_prompts, n_words)``.

    Prompts and words are tokenized separately (no special tokens), as in
    :func:`llmzero.evaluation.lm.option_log_probs`. When every word is one token, prompts
    are sorted by length, right-padded into batches, and each row's next-token
    distribution is read at its last real token: the model is causal, so padding after a
    prompt cannot change it. Otherwise each prompt is scored by ``option_log_probs``.
    """
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of strings; wrap a single prompt as [prompt].")

    def encode(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False)

    word_ids = [encode(word) for word in words]
    if any(len(ids) != 1 for ids in word_ids):  # several tokens: score each continuation
        return lm_eval.option_log_probs(
            model, encode, prompts, [list(words)] * len(prompts)
        ).log_prob
    device = next(model.parameters()).device
    encoded = [encode(prompt) for prompt in prompts]
    order = np.argsort([len(ids) for ids in encoded], kind="stable")  # less padding
    scores = np.empty((len(prompts), len(words)))
    for start in range(0, len(prompts), batch_size):
        rows = order[start : start + batch_size]
        lengths = torch.tensor([len(encoded[i]) for i in rows], device=device)
        longest = int(lengths.max())
        ids = torch.tensor([encoded[i] + [0] * (longest - len(encoded[i])) for i in rows])
        mask = (torch.arange(longest) < lengths.cpu()[:, None]).long()  # (B, T)
        logits = lm_eval.model_logits(model, ids.to(device), mask.to(device))  # (B, T, V)
        last = logits[torch.arange(len(rows), device=device), lengths - 1].float()  # (B, V)
        log_probs = torch.log_softmax(last, dim=-1)[:, [ids[0] for ids in word_ids]]
        scores[rows] = log_probs.cpu().numpy()
    return scores


# --------------------------------------------------------------------------------------
# Fine-tuning the top block on cached inputs
# --------------------------------------------------------------------------------------


@torch.no_grad()
def encoder_states(
    encoder: nn.Module, tokenizer, texts: Sequence[str], max_length: int = 64, batch_size: int = 64
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One frozen pass: sentence vectors and each text's input to the encoder's top block.

    Returns ``(vectors, block_inputs)``: ``vectors`` ``(n, hidden)`` are the mean-pooled,
    L2-normalised outputs (what :func:`llmzero.models.embeddings.encode` returns for
    MiniLM), and ``block_inputs[i]`` ``(tokens_i, hidden)`` is the hidden state that enters
    the last block for text ``i`` (padding removed), the input a
    :class:`TopBlockClassifier` trains on. Texts are batched by length, results come back
    in the order given.
    """
    device = next(encoder.parameters()).device
    order = np.argsort([len(text) for text in texts], kind="stable")
    vectors = torch.empty(len(texts), encoder.config.hidden_size)
    block_inputs: list[torch.Tensor] = [torch.empty(0)] * len(texts)
    batches = make_batches(
        tokenizer, [texts[i] for i in order], batch_size=batch_size, max_length=max_length
    )
    for start, batch in zip(range(0, len(texts), batch_size), batches, strict=True):
        rows = order[start : start + batch_size]
        batch = {key: value.to(device) for key, value in batch.items()}
        out = encoder(**batch, output_hidden_states=True)
        pooled = mean_pool(out.last_hidden_state, batch["attention_mask"])  # (B, hidden)
        vectors[rows] = torch.nn.functional.normalize(pooled, dim=-1).cpu()
        for j, row in enumerate(rows):
            n_tokens = int(batch["attention_mask"][j].sum())
            block_inputs[row] = out.hidden_states[-2][j, :n_tokens].cpu()  # (tokens, hidden)
    return vectors, block_inputs


def pad_states(
    states: Sequence[torch.Tensor],
    labels: Sequence[int] | None = None,
    batch_size: int = 32,
    seed: int | None = None,
) -> list[dict[str, torch.Tensor]]:
    """Batches ``{"hidden", "attention_mask"[, "labels"]}`` of cached states, right-padded.

    With ``seed`` the order is shuffled first (as :func:`llmzero.training.finetune.make_batches`
    does), so the batches can go straight to :func:`llmzero.training.finetune.finetune`.
    """
    order = np.arange(len(states))
    if seed is not None:
        order = np.random.default_rng(seed).permutation(len(states))
    batches = []
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        lengths = torch.tensor([len(states[i]) for i in rows])
        hidden = nn.utils.rnn.pad_sequence([states[i] for i in rows], batch_first=True)
        batch = {
            "hidden": hidden,  # (B, T, hidden)
            "attention_mask": (torch.arange(hidden.shape[1]) < lengths[:, None]).long(),
        }
        if labels is not None:
            batch["labels"] = torch.tensor([int(labels[i]) for i in rows])
        batches.append(batch)
    return batches


class TopBlockClassifier(nn.Module):
    """The top block of a BERT-style encoder, mean pooling and a classification head.

    It takes the cached inputs of that block (:func:`encoder_states`), so training it
    costs one block's forward and backward pass instead of the whole encoder's: the lower
    blocks are frozen and their outputs never change. ``forward`` returns
    ``{"logits"[, "loss"]}`` like :class:`llmzero.training.finetune.EncoderClassifier`.
    """

    def __init__(self, block: nn.Module, hidden_size: int, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.block = block
        self.head = ClassificationHead(hidden_size, num_labels, dropout)

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Mean-pooled block outputs ``(batch, hidden)`` for inputs ``(batch, seq, hidden)``."""
        blocked = (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        states = self.block(hidden, attention_mask=blocked)  # (batch, seq, hidden)
        if isinstance(states, tuple):  # older transformers return a tuple
            states = states[0]
        return mean_pool(states, attention_mask)

    def forward(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Logits ``(batch, num_labels)``, and the cross-entropy ``loss`` if labels are given."""
        return self.head(self.pool(hidden, attention_mask), labels)


# --------------------------------------------------------------------------------------
# The final table
# --------------------------------------------------------------------------------------

METRICS = ("accuracy", "macro-F1", "ECE")
"""The metrics of :func:`results_table`, each with a bootstrap interval."""


@dataclass
class ModelRun:
    """One model's predictions on a test sample, and what it cost.

    ``probabilities`` is ``(n, len(classes))``, columns in the order of ``classes``;
    ``train_seconds`` and ``ms_per_1000`` are wall-clock times measured by the caller.
    """

    name: str
    y_true: np.ndarray
    y_pred: np.ndarray
    probabilities: np.ndarray
    classes: list[str]
    train_seconds: float = float("nan")
    ms_per_1000: float = float("nan")
    scores: dict[str, bootstrap.BootstrapResult] = field(default_factory=dict)


def _metric(name: str, classes: Sequence[str], n_bins: int) -> Callable[..., float]:
    def score(y_true, y_pred, probabilities) -> float:
        if name == "accuracy":
            return metrics.accuracy(y_true, y_pred)
        if name == "macro-F1":
            return float(metrics.f1_score(y_true, y_pred, average="macro", labels=classes))
        truth = np.array([index[label] for label in y_true])  # class indices
        return calibration.expected_calibration_error(probabilities, truth, n_bins)

    index = {label: i for i, label in enumerate(classes)}

    return score


def evaluate_run(
    name: str,
    y_true: Sequence[str],
    y_pred: Sequence[str],
    probabilities: np.ndarray,
    classes: Sequence[str],
    train_seconds: float = float("nan"),
    ms_per_1000: float = float("nan"),
    n_resamples: int = 1000,
    seed: int = 0,
    n_bins: int = 10,
) -> ModelRun:
    """Score one model: accuracy, macro-F1 and ECE, each with a 95% percentile bootstrap CI.

    The resamples are drawn over the test texts' indices with ``seed``
    (:func:`llmzero.evaluation.bootstrap.bootstrap_ci`), so two runs on the same texts with
    the same seed are scored on the same resamples. Macro-F1 averages over ``classes``
    (a class never predicted in a resample counts as F1 0).
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    probabilities = np.asarray(probabilities, dtype=float)
    classes = list(classes)
    if probabilities.shape != (len(y_true), len(classes)) or len(y_pred) != len(y_true):
        raise ValueError(
            f"need one prediction and one row of {len(classes)} probabilities per text; got "
            f"{len(y_true)} texts, {len(y_pred)} predictions, probabilities {probabilities.shape}."
        )
    unknown = sorted(str(label) for label in set(y_true) - set(classes))
    if unknown:
        raise ValueError(f"labels {unknown} are not in classes {classes}.")
    run = ModelRun(name, y_true, y_pred, probabilities, classes, train_seconds, ms_per_1000)
    rows = np.arange(len(y_true))
    for metric in METRICS:
        score = _metric(metric, classes, n_bins)
        run.scores[metric] = bootstrap.bootstrap_ci(
            rows,
            lambda r, score=score: score(y_true[r], y_pred[r], probabilities[r]),
            n_resamples=n_resamples,
            seed=seed,
        )
    return run


def results_table(runs: Sequence[ModelRun]) -> pd.DataFrame:
    """One row per run: ``n``, each metric with ``_low``/``_high``, training s, ms per 1,000."""
    rows = []
    for run in runs:
        row: dict[str, float | int] = {"n": len(run.y_true)}
        for metric in METRICS:
            result = run.scores[metric]
            row.update({metric: result.estimate, f"{metric}_low": result.low})
            row[f"{metric}_high"] = result.high
        row.update({"train s": run.train_seconds, "ms / 1,000": run.ms_per_1000})
        rows.append(row)
    return pd.DataFrame(rows, index=pd.Index([run.name for run in runs], name="model"))


def paired_difference(
    y_true: Sequence[str],
    pred_a: Sequence[str],
    pred_b: Sequence[str],
    metric: str = "macro-F1",
    classes: Sequence[str] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> bootstrap.BootstrapResult:
    """Paired bootstrap of ``metric(a) - metric(b)`` on the same texts ("accuracy" or "macro-F1").

    Both models are scored on every resample of the same texts, so what the texts have in
    common (easy or hard ones) cancels; an interval that excludes 0 says the difference is
    not an accident of which texts were sampled (Koehn, 2004).
    """
    if metric not in ("accuracy", "macro-F1"):
        raise ValueError(f"metric must be 'accuracy' or 'macro-F1', got {metric!r}.")
    y_true, pred_a, pred_b = (np.asarray(values) for values in (y_true, pred_a, pred_b))
    if not len(y_true) == len(pred_a) == len(pred_b):
        raise ValueError("both models must be scored on the same texts (same lengths).")
    classes = sorted(set(y_true)) if classes is None else list(classes)
    score = _metric(metric, classes, 10)

    def difference(rows: np.ndarray) -> float:
        truth = y_true[rows]
        return score(truth, pred_a[rows], None) - score(truth, pred_b[rows], None)

    return bootstrap.bootstrap_ci(
        np.arange(len(y_true)), difference, n_resamples=n_resamples, seed=seed
    )


# --------------------------------------------------------------------------------------
# Error analysis by phenomenon
# --------------------------------------------------------------------------------------

PHENOMENON_RULES = {
    "negation": r"\b(?:not|no|never|nothing|nobody|neither|nor|none|without|cannot)\b|n't\b",
    "contrast": r"\b(?:but|yet|though|although|however|despite|while)\b",
    "hedged": r"\b(?:somewhat|fairly|rather|quite|mostly|almost|perhaps|maybe|occasionally"
    r"|at times|sort of|kind of|a bit)\b",
    "sarcasm cue": r"\b(?:oh|yeah|sure|right|wow|genius|brilliant(?:ly)?)\b.*[!?]|\"|\bso-called\b",
}
"""Phenomena tagged by regular expressions on the lower-cased text (word boundaries).

A rule marks a text as *containing a cue* of the phenomenon, not as an instance of it: "no"
in "no wonder it won" is not a negated opinion, and sarcasm mostly has no surface cue at
all, so these groups are approximations to read, not labels to trust."""


def tag_phenomena(texts: Sequence[str], rules: dict[str, str] | None = None) -> pd.DataFrame:
    """A boolean DataFrame, one column per rule (default :data:`PHENOMENON_RULES`)."""
    rules = PHENOMENON_RULES if rules is None else rules
    lowered = pd.Series([text.casefold() for text in texts], dtype=str)
    return pd.DataFrame(
        {name: lowered.str.contains(pattern, regex=True) for name, pattern in rules.items()}
    )


def error_rates_by_tag(
    tags: pd.DataFrame, correct: Sequence[bool], n_resamples: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Error rate per tag and overall, with 95% bootstrap intervals and the counts.

    One row per column of ``tags`` plus ``"all texts"``: ``n`` texts with the tag,
    ``errors``, ``error rate`` and its ``low``/``high`` interval (NaN with fewer than two
    texts), and ``share of errors`` (the fraction of all errors that carry the tag).
    """
    wrong = ~np.asarray(correct, dtype=bool)
    if len(wrong) != len(tags):
        raise ValueError(f"got {len(tags)} rows of tags for {len(wrong)} predictions.")
    groups = {"all texts": np.ones(len(wrong), dtype=bool)}
    groups.update({name: tags[name].to_numpy(dtype=bool) for name in tags.columns})
    rows = {}
    for name, member in groups.items():
        errors = wrong[member]
        row = {"n": int(member.sum()), "errors": int(errors.sum())}
        row["error rate"] = float(errors.mean()) if len(errors) else float("nan")
        low = high = float("nan")
        if len(errors) >= 2:
            result = bootstrap.bootstrap_ci(
                errors.astype(float), n_resamples=n_resamples, seed=seed
            )
            low, high = result.low, result.high
        row.update({"low": low, "high": high})
        row["share of errors"] = float(errors.sum() / max(1, wrong.sum()))
        rows[name] = row
    return pd.DataFrame(rows).T.astype({"n": int, "errors": int})


# --------------------------------------------------------------------------------------
# The model card
# --------------------------------------------------------------------------------------


@dataclass
class ModelCard:
    """The sections of a model card (Mitchell et al., 2019), filled from computed values.

    ``metrics`` is a table (e.g. rows of :func:`results_table`); every other field is
    text or a list of sentences. :meth:`to_markdown` renders the card.
    """

    model_name: str
    summary: str
    intended_use: list[str]
    out_of_scope: list[str]
    data: list[str]
    training: list[str]
    metrics: pd.DataFrame
    limitations: list[str]
    risks: list[str]

    def to_markdown(self, digits: int = 3, headings: bool = True) -> str:
        """The card as Markdown: a title, a summary and one section per field.

        With ``headings=False`` the title and section names are bold paragraphs instead of
        ``#`` headings, so that the card can be shown inside a page without adding sections
        to its table of contents.
        """
        for name in ("intended_use", "data", "metrics", "limitations", "risks"):
            value = getattr(self, name)
            if len(value) == 0:
                raise ValueError(f"the model card's {name!r} is empty: a card must say it.")
        title = "# {}" if headings else "**{}**"
        section = "## {}" if headings else "**{}**"
        lines = [title.format(f"Model card: {self.model_name}"), "", self.summary, ""]
        sections = [
            ("Intended use", self.intended_use),
            ("Out of scope", self.out_of_scope),
            ("Data", self.data),
            ("Training", self.training),
        ]
        for name, items in sections:
            lines += [section.format(name), "", *[f"- {item}" for item in items], ""]
        lines += [section.format("Metrics"), "", _markdown_table(self.metrics, digits), ""]
        for name, items in (("Limitations", self.limitations), ("Risks", self.risks)):
            lines += [section.format(name), "", *[f"- {item}" for item in items], ""]
        return "\n".join(lines).rstrip() + "\n"


def _markdown_table(table: pd.DataFrame, digits: int) -> str:
    def cell(value) -> str:
        if isinstance(value, float | np.floating):
            return f"{value:,.{digits}f}" if abs(value) < 100 else f"{value:,.0f}"
        return str(value)

    header = [table.index.name or "", *map(str, table.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, row in table.astype(object).iterrows():  # keeps integer columns integer
        lines.append("| " + " | ".join([str(index), *map(cell, row.tolist())]) + " |")
    return "\n".join(lines)
