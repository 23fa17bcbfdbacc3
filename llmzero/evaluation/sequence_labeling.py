"""Entity-level evaluation of sequence labelling: spans from BIO tags, precision, recall, F1.

Built in the chapter *Named-entity recognition and information extraction* (Part VI) and
checked there, and in ``tests/test_sequence_labeling.py``, to give exactly the numbers of
``seqeval`` (the library most NER code reports)::

    from llmzero.evaluation.sequence_labeling import entity_scores, spans

    spans(["B-person", "I-person", "O", "B-location"])
    # [('person', 0, 2), ('location', 3, 4)]
    scores = entity_scores(gold_tag_lists, predicted_tag_lists)
    scores.overall.f1, scores.per_type["person"].recall

Tags are IOB2 ("BIO"): ``B-TYPE`` begins an entity, ``I-TYPE`` continues it, ``O`` is
outside any entity. A predicted entity counts as correct only when its type, its first and
its last token all equal those of a gold entity (exact match; no credit for overlaps).

Two ways to read a malformed sequence such as ``O I-person`` (an ``I-`` that continues
nothing), both as in ``seqeval``:

- ``mode="conlleval"`` (the default of ``seqeval`` and of the CoNLL shared tasks' perl
  script): such an ``I-`` starts a new entity, as does an ``I-`` whose type differs from
  the entity before it;
- ``mode="strict"`` (``seqeval`` with ``mode="strict", scheme=IOB2``): only ``B-`` starts an
  entity; a stray ``I-`` is ignored.

On well-formed IOB2 sequences (every entity starts with ``B-``) the two agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "MODES",
    "EntityScores",
    "Scores",
    "classify_errors",
    "entity_scores",
    "prf",
    "spans",
]

#: The two ways of reading tags, see the module's documentation.
MODES = ("conlleval", "strict")

Span = tuple[str, int, int]  # (entity type, first token, one past the last token)


def _split_tag(tag: str, position: int) -> tuple[str, str]:
    """``"B-person"`` -> ``("B", "person")``; ``"O"`` -> ``("O", "")``; else a clear error."""
    if tag == "O":
        return "O", ""
    if not isinstance(tag, str) or len(tag) < 3 or tag[:2] not in ("B-", "I-"):
        raise ValueError(
            f"tag {tag!r} at position {position} is not IOB2: use 'O', 'B-TYPE' or 'I-TYPE' "
            "(convert BILUO/IOBES tags first, e.g. with spacy.training.biluo_to_iob)."
        )
    return tag[0], tag[2:]


def spans(tags: Sequence[str], mode: str = "conlleval") -> list[Span]:
    """The entities of one sentence's IOB2 tags, as ``(type, start, end)`` with ``end`` exclusive.

    Args:
        tags: one tag per token, e.g. ``["B-person", "I-person", "O"]``.
        mode: ``"conlleval"`` (a stray ``I-`` starts an entity) or ``"strict"`` (it is
            ignored); see the module's documentation.

    Raises:
        ValueError: an unknown mode, a single string instead of a list, or a tag that is not
            ``O``, ``B-TYPE`` or ``I-TYPE``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    if isinstance(tags, str):
        raise ValueError("tags must be a list of tags, one per token; got a single string.")
    found: list[Span] = []
    open_type, open_start = None, 0  # the entity being read, if any
    for i, tag in enumerate(tags):
        prefix, kind = _split_tag(tag, i)
        continues = prefix == "I" and open_type == kind
        if open_type is not None and not continues:
            found.append((open_type, open_start, i))  # the open entity ended before token i
            open_type = None
        if prefix == "B" or (prefix == "I" and not continues and mode == "conlleval"):
            open_type, open_start = kind, i
    if open_type is not None:
        found.append((open_type, open_start, len(tags)))
    return found


def prf(n_correct: int, n_predicted: int, n_gold: int) -> tuple[float, float, float]:
    """Precision, recall and F1 from counts; 0.0 where a denominator is 0 (as ``seqeval``)."""
    precision = n_correct / n_predicted if n_predicted else 0.0
    recall = n_correct / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


@dataclass(frozen=True)
class Scores:
    """Entity-level scores of one entity type, or of all types together (micro average)."""

    precision: float
    recall: float
    f1: float
    n_gold: int  # the support: gold entities
    n_predicted: int
    n_correct: int


@dataclass(frozen=True)
class EntityScores:
    """What :func:`entity_scores` returns: overall (micro) scores and one entry per type."""

    overall: Scores
    per_type: dict[str, Scores] = field(default_factory=dict)

    def macro_f1(self) -> float:
        """The unweighted mean of the per-type F1 (each type counts the same)."""
        if not self.per_type:
            return 0.0
        return sum(s.f1 for s in self.per_type.values()) / len(self.per_type)


def _check_pairs(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> None:
    if isinstance(gold, str) or isinstance(predicted, str):
        raise ValueError("pass lists of tag lists (one list per sentence), not strings.")
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted ones.")
    for i, (gold_tags, predicted_tags) in enumerate(zip(gold, predicted, strict=True)):
        if isinstance(gold_tags, str) or isinstance(predicted_tags, str):
            raise ValueError(
                f"sentence {i} is a string; pass a list of lists of tags, e.g. [['O', 'B-x']]."
            )
        if len(gold_tags) != len(predicted_tags):
            raise ValueError(
                f"sentence {i} has {len(gold_tags)} gold tags but {len(predicted_tags)} "
                "predicted ones: predict one tag per gold token (map sub-word predictions "
                "back to words first)."
            )


def entity_scores(
    gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], mode: str = "conlleval"
) -> EntityScores:
    """Entity-level precision, recall and F1, overall (micro) and per entity type.

    An entity is correct when a gold entity has the same type, start and end in the same
    sentence. Overall scores pool the counts of all types (seqeval's ``average="micro"``);
    a type appears in ``per_type`` when it occurs in the gold or the predicted tags.

    Args:
        gold: the gold tags, one list per sentence.
        predicted: the predicted tags, one list per sentence, as long as the gold list.
        mode: ``"conlleval"`` or ``"strict"``, see :func:`spans`.

    Raises:
        ValueError: different numbers of sentences or tags, or malformed tags.
    """
    _check_pairs(gold, predicted)
    gold_spans = {(i, *span) for i, tags in enumerate(gold) for span in spans(tags, mode)}
    predicted_spans = {(i, *span) for i, tags in enumerate(predicted) for span in spans(tags, mode)}
    correct = gold_spans & predicted_spans
    n_gold = Counter(span[1] for span in gold_spans)
    n_predicted = Counter(span[1] for span in predicted_spans)
    n_correct = Counter(span[1] for span in correct)

    def scores(g: int, p: int, c: int) -> Scores:
        return Scores(*prf(c, p, g), n_gold=g, n_predicted=p, n_correct=c)

    per_type = {
        kind: scores(n_gold[kind], n_predicted[kind], n_correct[kind])
        for kind in sorted(set(n_gold) | set(n_predicted))
    }
    overall = scores(len(gold_spans), len(predicted_spans), len(correct))
    return EntityScores(overall=overall, per_type=per_type)


def classify_errors(
    gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], mode: str = "conlleval"
) -> list[dict[str, object]]:
    """Every gold and predicted entity with what happened to it, for error analysis.

    Each row has ``sentence``, ``start``, ``end``, ``gold_type`` and ``predicted_type`` and an
    ``outcome``:

    - ``"correct"``: the same span and type;
    - ``"wrong type"``: the same span, another type (one row, both types filled in);
    - ``"wrong span"``: a gold entity overlapped by a predicted one of the same type with
      other boundaries (the predicted entity is then not reported again);
    - ``"missed"``: a gold entity that no predicted entity matches in either way;
    - ``"spurious"``: a predicted entity that matches no gold entity in either way.

    Under exact matching, every row except ``"correct"`` costs precision, recall or both.
    """
    _check_pairs(gold, predicted)
    rows: list[dict[str, object]] = []
    for i, (gold_tags, predicted_tags) in enumerate(zip(gold, predicted, strict=True)):
        gold_spans, predicted_spans = spans(gold_tags, mode), spans(predicted_tags, mode)
        used: set[Span] = set()
        by_position = {(start, end): kind for kind, start, end in predicted_spans}
        for kind, start, end in gold_spans:
            row = {"sentence": i, "start": start, "end": end, "gold_type": kind}
            other = by_position.get((start, end))
            overlapping = [
                p
                for p in predicted_spans
                if p[0] == kind and p not in used and p[1] < end and start < p[2]
            ]
            if other is not None:
                used.add((other, start, end))
                outcome = "correct" if other == kind else "wrong type"
                rows.append({**row, "predicted_type": other, "outcome": outcome})
            elif overlapping:
                used.add(overlapping[0])
                rows.append({**row, "predicted_type": kind, "outcome": "wrong span"})
            else:
                rows.append({**row, "predicted_type": None, "outcome": "missed"})
        for kind, start, end in predicted_spans:
            if (kind, start, end) not in used:
                rows.append(
                    {
                        "sentence": i,
                        "start": start,
                        "end": end,
                        "gold_type": None,
                        "predicted_type": kind,
                        "outcome": "spurious",
                    }
                )
    return rows
