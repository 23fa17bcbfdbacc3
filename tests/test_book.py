"""The glue helper the notebooks use to put computed numbers into the prose."""

from __future__ import annotations

import numpy as np
import torch

from llmzero.book import _plain_number


def test_numpy_and_torch_scalars_become_python_numbers():
    assert _plain_number(np.float64(0.25)) == 0.25
    assert type(_plain_number(np.float64(0.25))) is float
    assert type(_plain_number(np.int64(3))) is int
    assert type(_plain_number(torch.tensor(1.5))) is float
    assert repr(_plain_number(np.float32(0.5))) == "0.5"


def test_arrays_strings_and_python_numbers_are_left_alone():
    array = np.arange(3)
    assert _plain_number(array) is array
    assert _plain_number("text") == "text"
    assert _plain_number(7) == 7


def _stream(text: str, name: str = "stdout") -> dict:
    return {"output_type": "stream", "name": name, "text": text}


def test_printed_text_stays_in_order_around_displays():
    from llmzero.book.sphinxext import coalesce_adjacent_streams

    table = {"output_type": "display_data", "data": {"text/plain": "TABLE"}}
    outputs = [_stream("a\n"), _stream("b\n"), table, _stream("c\n")]
    merged = coalesce_adjacent_streams(outputs)
    assert [o["output_type"] for o in merged] == ["stream", "display_data", "stream"]
    assert merged[0]["text"] == "a\nb\n"
    assert merged[2]["text"] == "c\n"


def test_merging_leaves_the_outputs_it_was_given_unchanged():
    from llmzero.book.sphinxext import coalesce_adjacent_streams

    outputs = [_stream("a\n"), _stream("b\n")]
    first = coalesce_adjacent_streams(outputs)
    again = coalesce_adjacent_streams(outputs)
    assert first[0]["text"] == again[0]["text"] == "a\nb\n"
    assert [o["text"] for o in outputs] == ["a\n", "b\n"]


def test_stdout_and_stderr_are_not_merged_together():
    from llmzero.book.sphinxext import coalesce_adjacent_streams

    merged = coalesce_adjacent_streams([_stream("a\n"), _stream("w\n", "stderr")])
    assert [o["name"] for o in merged] == ["stdout", "stderr"]


def test_carriage_returns_and_backspaces_are_applied():
    from llmzero.book.sphinxext import coalesce_adjacent_streams

    merged = coalesce_adjacent_streams([_stream("10%\r50%\r100%\n"), _stream("ab\bc\n")])
    assert merged[0]["text"] == "100%\nac\n"


def test_the_site_uses_the_order_keeping_merge():
    import myst_nb.core.render

    from llmzero.book import sphinxext

    class App:
        def connect(self, *args, **kwargs):
            pass

        def add_config_value(self, *args, **kwargs):
            pass

        add_node = add_role = add_config_value

    sphinxext.setup(App())
    assert myst_nb.core.render.coalesce_streams is sphinxext.coalesce_adjacent_streams
