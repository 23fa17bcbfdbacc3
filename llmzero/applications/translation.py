"""A rule-defined translation task: English number words into French number words.

Part VI's chapter *Machine translation and summarization* trains an encoder–decoder
(:mod:`llmzero.models.seq2seq`) to translate, and needs a parallel corpus whose every
reference is right and whose test set shares nothing with its training set. This module
writes both languages by rule, for every whole number from 1 to 999,999:

- :func:`english_words`: American English without "and", tens and units joined by a hyphen
  (``342 -> "three hundred forty-two"``);
- :func:`french_words`: French in the traditional spelling (before the 1990 reform), with
  its irregular corners: *et* in 21, 31, ..., 71 (``"soixante et onze"``), base twenty
  from 60 to 99 (``"quatre-vingt-dix-neuf"``), the plural *s* of *vingts* and *cents* only
  when nothing follows (``"quatre-vingts"`` but ``"quatre-vingt mille"``), ``"mille"``
  and ``"cent"`` without *un*;
- :func:`tokenize` and :func:`detokenize`: words and hyphens as tokens, and back;
- :func:`make_split`: pairs for disjoint sets of training and test numbers.

``tests/test_translation.py`` checks the rules on hand-picked numbers and, where the
``num2words`` package is installed, against it for every number below a million.

Usage::

    from llmzero.applications import translation

    translation.french_words(71_080)   # 'soixante et onze mille quatre-vingts'
    train, test = translation.make_split(5000, 500, max_value=99_999, seed=0)
    train[0].english, train[0].french
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

__all__ = [
    "MAX_VALUE",
    "NumberPair",
    "detokenize",
    "english_words",
    "french_words",
    "make_split",
    "tokenize",
]

#: The largest number the rules cover.
MAX_VALUE = 999_999

_EN_ONES = [
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
    *("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen"),
    *("eighteen", "nineteen"),
]
_EN_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_FR_ONES = [
    *("zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix"),
    *("onze", "douze", "treize", "quatorze", "quinze", "seize"),
]
_FR_TENS = {2: "vingt", 3: "trente", 4: "quarante", 5: "cinquante", 6: "soixante"}


def _check(number: int) -> None:
    if isinstance(number, bool) or not isinstance(number, int):
        raise TypeError(f"expected an int, got {type(number).__name__}.")
    if not 1 <= number <= MAX_VALUE:
        raise ValueError(f"the rules cover 1 to {MAX_VALUE:,}; got {number:,}.")


def _english_below_thousand(number: int) -> list[str]:
    hundreds, rest = divmod(number, 100)
    words = [_EN_ONES[hundreds], "hundred"] if hundreds else []
    if rest >= 20:
        tens, units = divmod(rest, 10)
        words.append(_EN_TENS[tens - 2] + (f"-{_EN_ONES[units]}" if units else ""))
    elif rest:
        words.append(_EN_ONES[rest])
    return words


def english_words(number: int) -> str:
    """``number`` (1 to 999,999) in American English words, e.g. ``"forty-two thousand"``."""
    _check(number)
    thousands, rest = divmod(number, 1000)
    words = [*_english_below_thousand(thousands), "thousand"] if thousands else []
    return " ".join(words + _english_below_thousand(rest))


def _french_below_hundred(number: int, last: bool) -> str:
    if number <= 16:
        return _FR_ONES[number]
    if number < 20:
        return f"dix-{_FR_ONES[number - 10]}"
    tens, units = divmod(number, 10)
    if tens <= 6:
        if units == 0:
            return _FR_TENS[tens]
        joiner = " et " if units == 1 else "-"
        return f"{_FR_TENS[tens]}{joiner}{_FR_ONES[units]}"
    if tens == 7:  # soixante-dix, soixante et onze, soixante-douze ... (60 + 10..19)
        joiner = " et " if units == 1 else "-"
        return f"soixante{joiner}{_french_below_hundred(10 + units, last)}"
    if number == 80:  # quatre-vingts takes its s only when no number word follows
        return "quatre-vingts" if last else "quatre-vingt"
    rest = number - 80  # 81..99: quatre-vingt-un, ..., quatre-vingt-dix-neuf (no "et")
    return f"quatre-vingt-{_french_below_hundred(rest, last)}"


def _french_below_thousand(number: int, last: bool) -> list[str]:
    hundreds, rest = divmod(number, 100)
    words = []
    if hundreds:
        if hundreds > 1:
            words.append(_FR_ONES[hundreds])
        plural = hundreds > 1 and rest == 0 and last  # deux cents, but deux cent un
        words.append("cents" if plural else "cent")
    if rest:
        words.append(_french_below_hundred(rest, last))
    return words


def french_words(number: int) -> str:
    """``number`` (1 to 999,999) in French words, traditional spelling, e.g.
    ``"quatre-vingt-dix-sept mille"``. "last" below means: no number word follows, which
    decides the plural of *vingts* and *cents* (*mille* is invariable and takes no *un*)."""
    _check(number)
    thousands, rest = divmod(number, 1000)
    words = []
    if thousands:
        if thousands > 1:
            words += _french_below_thousand(thousands, last=False)
        words.append("mille")
    return " ".join(words + _french_below_thousand(rest, last=True))


_TOKEN = re.compile(r"[^\s-]+|-")


def tokenize(text: str) -> list[str]:
    """Words and hyphens as tokens: ``"vingt-deux mille"`` -> ``["vingt", "-", "deux",
    "mille"]``."""
    if not isinstance(text, str):
        raise TypeError(f"expected a string, got {type(text).__name__}.")
    return _TOKEN.findall(text)


def detokenize(tokens: list[str]) -> str:
    """The inverse of :func:`tokenize` on well-formed text: spaces between words, none
    around hyphens."""
    return " ".join(tokens).replace(" - ", "-")


@dataclass(frozen=True)
class NumberPair:
    """One parallel item: the number and its English and French words."""

    number: int
    english: str
    french: str


def _draw(rng: random.Random, max_value: int) -> int:
    # the number of digits is uniform, then the number within it: short numbers are seen
    digits = rng.randint(1, len(str(max_value)))
    low = 1 if digits == 1 else 10 ** (digits - 1)
    return rng.randint(low, min(10**digits - 1, max_value))


def make_split(
    n_train: int, n_test: int, max_value: int = MAX_VALUE, seed: int = 0
) -> tuple[list[NumberPair], list[NumberPair]]:
    """Parallel pairs for ``n_train`` training and ``n_test`` test numbers, no number in both.

    Numbers are drawn with a uniform number of digits (so one-digit numbers are as common
    as six-digit ones), without repetition, from 1 to ``max_value``; the same ``seed`` gives
    the same split.

    Raises:
        ValueError: sizes are not positive, ``max_value`` is outside 1..999,999, or there are
            fewer than ``n_train + n_test`` numbers to draw from.
    """
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be positive, got {n_train} and {n_test}.")
    _check(max_value)
    if n_train + n_test > max_value:
        raise ValueError(
            f"{n_train + n_test:,} distinct numbers cannot be drawn from 1..{max_value:,}: "
            "lower n_train or n_test, or raise max_value."
        )
    if n_train + n_test > max_value // 2:  # drawing by digits would take long: shuffle all
        numbers = list(range(1, max_value + 1))
        random.Random(seed).shuffle(numbers)
        numbers = numbers[: n_train + n_test]
    else:
        rng, drawn = random.Random(seed), set()
        while len(drawn) < n_train + n_test:
            drawn.add(_draw(rng, max_value))
        numbers = sorted(drawn)
        random.Random(seed + 1).shuffle(numbers)
    pairs = [NumberPair(n, english_words(n), french_words(n)) for n in numbers]
    return pairs[:n_train], pairs[n_train:]
