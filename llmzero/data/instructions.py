"""The book's offline instruction set, and the preference pairs and multiple-choice items
built from it (Part V).

No instruction-tuning data set ships offline, so this module builds one, honestly, from
real data the course already has: WordNet (antonyms, definitions), the Universal
Declaration of Human Rights in 17 languages (which language is this?), the Three Hundred
Tang Poems (who wrote this line? what comes next?) and two-digit addition. Every answer is
short and checkable by exact match, so a model's score needs no judge.

The split is fixed and shipped with the package (``instruction_sets/train.jsonl`` and
``test.jsonl``; their README says how they were made). Test items never share their
source with training items: a held-out antonym pair, definition, addition, UDHR passage or
poem appears in no training example, in either direction.

Usage::

    from llmzero.data import instructions

    train = instructions.load_instructions("train")      # list[Instruction]
    test = instructions.load_instructions("test")
    pairs = instructions.preference_pairs(test, rule="wrong_answer")
    items = instructions.multiple_choice(test, n_options=4)

``python -m llmzero.data.instructions`` rebuilds the two files from the corpora (a test
checks that the shipped files equal a fresh build).
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from llmzero.data import assets

__all__ = [
    "LANGUAGE_NAMES",
    "PREFERENCE_RULES",
    "TASKS",
    "ChoiceItem",
    "Instruction",
    "PreferencePair",
    "addition_problem",
    "build_instructions",
    "is_correct",
    "load_instructions",
    "multiple_choice",
    "preference_pairs",
    "source_overlap",
    "write_instructions",
]

DATA_DIR = Path(__file__).with_name("instruction_sets")

TASKS = ("addition", "antonym", "definition", "language", "poet", "next_line")
"""The six tasks, in the order the files list them."""

LANGUAGE_NAMES = {
    "en": "English", "fr": "French", "de": "German", "es": "Spanish", "pt": "Portuguese",
    "it": "Italian", "nl": "Dutch", "da": "Danish", "no": "Norwegian", "sv": "Swedish",
    "fi": "Finnish", "pl": "Polish", "cs": "Czech", "sk": "Slovak", "ru": "Russian",
    "uk": "Ukrainian", "zh": "Chinese",
}  # fmt: skip
"""English names of the UDHR languages of :mod:`llmzero.data.langid`, the answers of the
``language`` task."""

PREFERENCE_RULES = ("wrong_answer", "off_format")
"""How :func:`preference_pairs` makes the rejected answer (see there)."""

# Items per task: (train, test). Small on purpose: a CPU fine-tunes on all of it in minutes.
_SIZES = {
    "addition": (400, 100),
    "antonym": (300, 75),
    "definition": (300, 75),
    "language": (255, 68),
    "poet": (240, 60),
    "next_line": (240, 60),
}


@dataclass(frozen=True)
class Instruction:
    """One example: a user ``prompt`` and the exact ``response`` an assistant should give."""

    id: str
    task: str
    prompt: str
    response: str


@dataclass(frozen=True)
class PreferencePair:
    """A prompt with a preferred (``chosen``) and a dispreferred (``rejected``) answer;
    ``rule`` names what makes ``rejected`` worse (one of :data:`PREFERENCE_RULES`)."""

    id: str
    task: str
    prompt: str
    chosen: str
    rejected: str
    rule: str


@dataclass(frozen=True)
class ChoiceItem:
    """A multiple-choice question: ``options`` holds one correct answer, at ``answer``."""

    id: str
    task: str
    prompt: str
    options: tuple[str, ...]
    answer: int


def addition_problem(rng: random.Random, low: int = 10, high: int = 99) -> tuple[str, str]:
    """A random addition ``a + b`` with ``low <= a, b <= high``, as ``(prompt, answer)``.

    The same wording as the ``addition`` task, so a model tuned on the set understands it;
    Part V's reinforcement-learning run draws fresh problems from here.
    """
    if low > high:
        raise ValueError(f"low must be at most high, got low={low}, high={high}.")
    first, second = rng.randint(low, high), rng.randint(low, high)
    return f"What is {first} + {second}?", str(first + second)


def is_correct(example: Instruction, answer: str) -> bool:
    """Exact match after trimming whitespace and a final full stop (``"85."`` counts)."""
    return answer.strip().removesuffix(".").strip() == example.response


# --- building the set from the corpora ----------------------------------------------------


def _split(keys: Sequence, n_train: int, n_test: int, rng: random.Random) -> tuple[list, list]:
    keys = sorted(keys)
    rng.shuffle(keys)
    if len(keys) < n_train + n_test:
        raise RuntimeError(f"only {len(keys)} source items for {n_train} + {n_test} examples")
    return keys[n_test : n_test + n_train], keys[:n_test]


def _addition(rng: random.Random) -> dict[str, list[tuple[str, str]]]:
    # A pair and its mirror image (a + b, b + a) count as one source, kept in one split.
    keys = [(a, b) for a in range(10, 100) for b in range(a, 100)]
    train, test = _split(keys, *_SIZES["addition"], rng)
    out = {}
    for name, part in (("train", train), ("test", test)):
        pairs = [(a, b) if rng.random() < 0.5 else (b, a) for a, b in part]
        out[name] = [(f"What is {a} + {b}?", str(a + b)) for a, b in pairs]
    return out


def _wordnet():
    assets.nltk("wordnet")
    from nltk.corpus import wordnet

    return wordnet


def _antonyms(rng: random.Random) -> dict[str, list[tuple[str, str]]]:
    wordnet = _wordnet()
    antonyms: dict[str, set[str]] = defaultdict(set)
    counts: dict[str, int] = defaultdict(int)
    for synset in wordnet.all_synsets("a"):
        for lemma in synset.lemmas():
            counts[lemma.name()] += lemma.count()
            antonyms[lemma.name()].update(a.name() for a in lemma.antonyms())
    # Unambiguous, common, one-word pairs: each word has exactly one antonym, and back.
    pairs = {
        tuple(sorted((word, next(iter(others)))))
        for word, others in antonyms.items()
        if len(others) == 1 and word.isalpha() and word.islower()
    }
    pairs = [
        (a, b)
        for a, b in pairs
        if b.isalpha() and b.islower() and antonyms[b] == {a} and min(counts[a], counts[b]) >= 1
    ]
    train, test = _split(pairs, *_SIZES["antonym"], rng)
    out = {}
    for name, part in (("train", train), ("test", test)):
        directed = [(a, b) if rng.random() < 0.5 else (b, a) for a, b in part]
        out[name] = [(f"What is the opposite of '{a}'?", b) for a, b in directed]
    return out


def _definitions(rng: random.Random) -> dict[str, list[tuple[str, str]]]:
    wordnet = _wordnet()
    by_word: dict[str, list] = defaultdict(list)
    for synset in wordnet.all_synsets("n"):
        for lemma in synset.lemmas():
            by_word[lemma.name()].append((synset, lemma))
    items = []
    for word, senses in by_word.items():
        # Words with one noun sense only, used at least twice in the SemCor counts, whose
        # definition is short and does not give the word away.
        if len(senses) != 1 or not (word.isalpha() and word.islower()):
            continue
        synset, lemma = senses[0]
        gloss = synset.definition()
        # One lemma in the synset, or "which word" would have several right answers.
        if (
            len(synset.lemmas()) == 1
            and lemma.count() >= 2
            and len(gloss) <= 90
            and word not in gloss.lower()
        ):
            items.append((word, gloss))
    train, test = _split(items, *_SIZES["definition"], rng)
    return {
        name: [(f"Which word means '{gloss}'?", word) for word, gloss in part]
        for name, part in (("train", train), ("test", test))
    }


def _languages(rng: random.Random) -> dict[str, list[tuple[str, str]]]:
    from llmzero.data.langid import udhr_segments, udhr_split

    # Training passages come from the first 60% of each translation, test passages from the
    # rest, so no sentence is in both.
    out = {}
    for name, texts in zip(("train", "test"), udhr_split(), strict=True):
        per_language = _SIZES["language"][name == "test"] // len(LANGUAGE_NAMES)
        by_code = defaultdict(list)
        for code, piece in udhr_segments(texts, length=60):
            by_code[code].append(piece)
        chosen = []
        for code in LANGUAGE_NAMES:
            chosen += [(code, piece) for piece in rng.sample(by_code[code], per_language)]
        rng.shuffle(chosen)
        out[name] = [
            (f"Which language is this? {piece}", LANGUAGE_NAMES[code]) for code, piece in chosen
        ]
    return out


_NOTE = re.compile(r"[（(][^）)]*[）)]")
_SENTENCE = re.compile(r"[^。？！]+[。？！]")


def _poems(rng: random.Random) -> dict[str, dict[str, list[tuple[str, str]]]]:
    data = json.loads(assets.path("tang300").read_text(encoding="utf-8"))
    poems = [poem for group in data["content"] for poem in group["content"]]
    by_poet = defaultdict(list)
    for index, poem in enumerate(poems):
        by_poet[poem["author"]].append(index)
    # A held-out poem's poet must have poems in training too, or "who wrote it" is a guess.
    test_poems, train_poems = set(), set()
    for poet in sorted(by_poet):
        indices = sorted(by_poet[poet])
        rng.shuffle(indices)
        n_test = len(indices) // 4 if len(indices) >= 3 else 0
        test_poems.update(indices[:n_test])
        train_poems.update(indices[n_test:])
    out: dict[str, dict[str, list[tuple[str, str]]]] = {"poet": {}, "next_line": {}}
    for name, chosen in (("train", train_poems), ("test", test_poems)):
        lines, follows = [], []
        for index in sorted(chosen):
            # Editors' notes on variant characters, "(勸客 一作：喚客)", are not the poem, and
            # some run across the file's line breaks: drop them, then cut after 。？！
            text = _NOTE.sub("", "".join(poems[index]["paragraphs"]))
            couplets = _SENTENCE.findall(text)
            author = poems[index]["author"]
            lines += [(line, author) for line in couplets]
            follows += list(itertools.pairwise(couplets))
        n_poet = _SIZES["poet"][name == "test"]
        n_next = _SIZES["next_line"][name == "test"]
        out["poet"][name] = [
            (f"Who wrote this line of Tang poetry? {line}", author)
            for line, author in rng.sample(lines, n_poet)
        ]
        out["next_line"][name] = [
            (f"Continue this Tang poem with its next line: {line}", after)
            for line, after in rng.sample(follows, n_next)
        ]
    return out


def build_instructions(seed: int = 0) -> dict[str, list[Instruction]]:
    """Build the instruction set from the corpora: ``{"train": [...], "test": [...]}``.

    Deterministic for a given ``seed``; the shipped files are ``build_instructions(0)``.
    """
    rng = random.Random(seed)
    by_task = {
        "addition": _addition(rng),
        "antonym": _antonyms(rng),
        "definition": _definitions(rng),
        "language": _languages(rng),
        **_poems(rng),
    }
    return {
        split: [
            Instruction(f"{split}-{task}-{number:04d}", task, prompt, response)
            for task in TASKS
            for number, (prompt, response) in enumerate(by_task[task][split])
        ]
        for split in ("train", "test")
    }


def write_instructions(directory: str | Path = DATA_DIR, seed: int = 0) -> list[Path]:
    """Build the set and write ``train.jsonl`` and ``test.jsonl`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for split, examples in build_instructions(seed).items():
        path = directory / f"{split}.jsonl"
        text = "".join(json.dumps(asdict(e), ensure_ascii=False) + "\n" for e in examples)
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def load_instructions(split: str, tasks: Sequence[str] | None = None) -> list[Instruction]:
    """The shipped ``"train"`` or ``"test"`` split, optionally only some ``tasks``."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    unknown = set(tasks or ()) - set(TASKS)
    if unknown:
        raise ValueError(f"unknown task(s) {sorted(unknown)}; choose from {list(TASKS)}.")
    path = DATA_DIR / f"{split}.jsonl"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing; reinstall llmzero, or rebuild it with "
            "`python -m llmzero.data.instructions`."
        )
    with path.open(encoding="utf-8") as handle:
        examples = [Instruction(**json.loads(line)) for line in handle]
    return [e for e in examples if tasks is None or e.task in tasks]


# --- derived sets: preference pairs and multiple choice -----------------------------------

_VERBOSE = (
    "Sure! That is a great question. After thinking about it carefully, the answer is {}. "
    "I hope this helps, and let me know if you have any other questions!"
)


def _wrong_answer(example: Instruction, others: Sequence[str], rng: random.Random) -> str:
    if example.task == "addition":
        return str(int(example.response) + rng.choice([-10, -2, -1, 1, 2, 10]))
    candidates = sorted(set(others) - {example.response})
    return rng.choice(candidates)


def preference_pairs(
    examples: Sequence[Instruction], rule: str = "wrong_answer", seed: int = 0
) -> list[PreferencePair]:
    """One preference pair per example, ``chosen`` always being the correct ``response``.

    ``rule="wrong_answer"``: ``rejected`` is a wrong answer of the right form (another
    example's answer to the same task, or a sum off by 1, 2 or 10).
    ``rule="off_format"``: ``rejected`` is the correct answer wrapped in chatty filler, so
    the pair prefers a bare answer, as the set's format asks.
    """
    if rule not in PREFERENCE_RULES:
        raise ValueError(f"rule must be one of {PREFERENCE_RULES}, got {rule!r}.")
    rng = random.Random(seed)
    answers = defaultdict(list)
    for example in examples:
        answers[example.task].append(example.response)
    pairs = []
    for example in examples:
        if rule == "wrong_answer":
            rejected = _wrong_answer(example, answers[example.task], rng)
        else:
            rejected = _VERBOSE.format(example.response)
        pairs.append(
            PreferencePair(
                example.id, example.task, example.prompt, example.response, rejected, rule
            )
        )
    return pairs


def multiple_choice(
    examples: Sequence[Instruction], n_options: int = 4, seed: int = 0
) -> list[ChoiceItem]:
    """Turn each example into a question with ``n_options`` answers: the correct one and
    ``n_options - 1`` distinct wrong ones drawn from the same task's answers, in random
    order (so chance accuracy is ``1 / n_options``)."""
    if n_options < 2:
        raise ValueError(f"n_options must be at least 2, got {n_options}.")
    rng = random.Random(seed)
    answers = defaultdict(set)
    for example in examples:
        answers[example.task].add(example.response)
    items = []
    for example in examples:
        wrong = sorted(answers[example.task] - {example.response})
        if len(wrong) < n_options - 1:
            raise ValueError(
                f"task {example.task!r} has only {len(wrong) + 1} distinct answers here; "
                f"use n_options <= {len(wrong) + 1} or pass more examples."
            )
        options = [example.response, *rng.sample(wrong, n_options - 1)]
        rng.shuffle(options)
        items.append(
            ChoiceItem(
                example.id,
                example.task,
                example.prompt,
                tuple(options),
                options.index(example.response),
            )
        )
    return items


def source_overlap(train: Sequence[Instruction], test: Sequence[Instruction]) -> set[str]:
    """Test prompts that also occur in training, up to whitespace (none in the shipped set)."""
    normalise = re.compile(r"\s+")
    seen = {normalise.sub(" ", e.prompt) for e in train}
    return {e.prompt for e in test if normalise.sub(" ", e.prompt) in seen}


if __name__ == "__main__":
    for written in write_instructions():
        print(f"wrote {written}")
