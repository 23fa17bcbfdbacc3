"""The offline instruction set: shipped files, held-out split, derived sets, errors."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from llmzero.data import instructions
from llmzero.data.instructions import Instruction


@pytest.fixture(scope="module")
def train() -> list[Instruction]:
    return instructions.load_instructions("train")


@pytest.fixture(scope="module")
def test() -> list[Instruction]:
    return instructions.load_instructions("test")


def test_shipped_files_equal_a_fresh_build(train, test):
    built = instructions.build_instructions(seed=0)
    assert built["train"] == train
    assert built["test"] == test


def test_every_task_has_its_stated_size(train, test):
    sizes = {task: (n_train, n_test) for task, (n_train, n_test) in instructions._SIZES.items()}
    counts_train, counts_test = Counter(e.task for e in train), Counter(e.task for e in test)
    assert {task: (counts_train[task], counts_test[task]) for task in instructions.TASKS} == sizes


def test_no_test_prompt_or_source_appears_in_training(train, test):
    assert instructions.source_overlap(train, test) == set()
    # Antonym pairs are held out in both directions, poems as a whole.
    train_antonyms = {
        frozenset((e.prompt.split("'")[1], e.response)) for e in train if e.task == "antonym"
    }
    for example in test:
        if example.task == "antonym":
            assert frozenset((example.prompt.split("'")[1], example.response)) not in train_antonyms
    train_lines = {e.response for e in train if e.task == "next_line"}
    assert not {e.response for e in test if e.task == "next_line"} & train_lines


def test_ids_are_unique_and_answers_short(train, test):
    assert len({e.id for e in train + test}) == len(train) + len(test)
    assert all(0 < len(e.response) <= 40 for e in train + test)


def test_addition_answers_are_the_sums(train):
    for example in train:
        if example.task == "addition":
            first, second = example.prompt.removeprefix("What is ").removesuffix("?").split(" + ")
            assert int(example.response) == int(first) + int(second)


def test_addition_problem_uses_the_task_wording():
    prompt, answer = instructions.addition_problem(random.Random(3))
    first, second = prompt.removeprefix("What is ").removesuffix("?").split(" + ")
    assert int(answer) == int(first) + int(second)
    with pytest.raises(ValueError, match="low must be at most high"):
        instructions.addition_problem(random.Random(0), low=5, high=4)


def test_is_correct_forgives_only_whitespace_and_a_full_stop():
    example = Instruction("x", "addition", "What is 1 + 2?", "3")
    assert instructions.is_correct(example, " 3. ")
    assert not instructions.is_correct(example, "The answer is 3")


@pytest.mark.parametrize("rule", instructions.PREFERENCE_RULES)
def test_preference_pairs_always_prefer_the_correct_answer(test, rule):
    pairs = instructions.preference_pairs(test, rule=rule)
    assert len(pairs) == len(test)
    for pair, example in zip(pairs, test, strict=True):
        assert pair.chosen == example.response and pair.rejected != example.response
        if rule == "off_format":
            assert example.response in pair.rejected


def test_multiple_choice_holds_one_correct_option(test):
    items = instructions.multiple_choice(test, n_options=4)
    for item, example in zip(items, test, strict=True):
        assert len(set(item.options)) == 4
        assert item.options[item.answer] == example.response
    # The correct option is not always in the same place.
    assert len({item.answer for item in items}) == 4


def test_bad_arguments_say_what_to_do(test):
    with pytest.raises(ValueError, match="split must be"):
        instructions.load_instructions("validation")
    with pytest.raises(ValueError, match="unknown task"):
        instructions.load_instructions("train", tasks=["sentiment"])
    with pytest.raises(ValueError, match="rule must be one of"):
        instructions.preference_pairs(test, rule="longer")
    with pytest.raises(ValueError, match="n_options <="):
        instructions.multiple_choice(test[:3], n_options=4)
