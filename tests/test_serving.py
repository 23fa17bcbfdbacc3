"""Tests of llmzero.applications.serving: step-time interpolation, the static and continuous
batching simulator (a hand-worked schedule), the streaming HTTP endpoint, ONNX export."""

from __future__ import annotations

import http.client
import threading

import pytest
import torch

from llmzero.applications.serving import (
    Request,
    StepTimes,
    TokenServer,
    export_onnx,
    make_requests,
    simulate,
    stream_completion,
    time_decode_steps,
)
from llmzero.models.llama import Llama, LlamaConfig

ONE_SECOND_STEPS = StepTimes([1, 2], [1.0, 1.0], prefill_per_token=0.0)


def tiny_llama() -> Llama:
    torch.manual_seed(0)
    config = LlamaConfig(
        block_size=64, vocab_size=50, n_layer=2, n_head=4, n_kv_head=2, n_embd=32, hidden_dim=64
    )
    return Llama(config).eval()


# -- step times and the simulator --------------------------------------------------------


def test_step_times_interpolate_and_extrapolate() -> None:
    times = StepTimes([1, 4, 8], [0.1, 0.4, 0.6], prefill_per_token=0.01)
    assert times.decode(2) == pytest.approx(0.2)
    assert times.decode(12) == pytest.approx(0.8)  # the last slope, 0.05 s a sequence
    assert times.prefill(30) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="increase"):
        StepTimes([4, 1], [0.1, 0.2], 0.0)


def test_static_batching_follows_the_hand_worked_schedule() -> None:
    # Every decode step costs 1 s, prefill nothing; A and B share the first batch, C waits.
    requests = [Request(0.0, 4, 2), Request(0.0, 4, 4), Request(0.0, 4, 2)]
    result = simulate(requests, ONE_SECOND_STEPS, max_batch=2, policy="static")
    latencies = sorted((r.request.output_tokens, r.latency) for r in result.records)
    # A and B return together at 3 s (B needs 3 decode steps); C starts then and ends at 4 s.
    assert [latency for _, latency in latencies] == [3.0, 4.0, 3.0]


def test_continuous_batching_fills_a_finished_place_at_once() -> None:
    requests = [Request(0.0, 4, 2), Request(0.0, 4, 4), Request(0.0, 4, 2)]
    result = simulate(requests, ONE_SECOND_STEPS, max_batch=2, policy="continuous")
    finish = [r.finish for r in sorted(result.records, key=lambda r: r.finish)]
    assert finish == [1.0, 3.0, 3.0]  # A leaves after 1 s and C takes its place
    assert result.throughput == pytest.approx(8 / 3)


def test_with_one_place_both_policies_agree_and_continuous_is_never_slower() -> None:
    times = StepTimes([1, 4, 16], [0.05, 0.06, 0.12], prefill_per_token=0.002)
    requests = make_requests(60, rate=8.0, seed=1)
    one = [simulate(requests, times, 1, policy) for policy in ("static", "continuous")]
    assert one[0].records == one[1].records
    static, continuous = (simulate(requests, times, 8, p) for p in ("static", "continuous"))
    assert len(continuous.records) == len(requests)
    assert continuous.latency() < static.latency()
    assert continuous.throughput >= static.throughput


def test_requests_are_reproducible_and_checked() -> None:
    assert make_requests(5, 2.0, seed=3) == make_requests(5, 2.0, seed=3)
    with pytest.raises(ValueError, match="rate > 0"):
        make_requests(5, 0.0)
    with pytest.raises(ValueError, match="policy"):
        simulate(make_requests(2, 1.0), ONE_SECOND_STEPS, 2, "dynamic")


def test_time_decode_steps_times_each_step() -> None:
    prefill, steps = time_decode_steps(tiny_llama(), 3, 5, steps=4, vocab_size=50)
    assert prefill > 0 and len(steps) == 4 and all(s > 0 for s in steps)


# -- the HTTP endpoint --------------------------------------------------------------------


def words(prompt: str, max_new_tokens: int):
    yield from [f"{word} " for word in prompt.split()][:max_new_tokens]


def test_server_streams_the_pieces_and_releases_the_port() -> None:
    with TokenServer(words) as server:
        url = server.url
        assert list(stream_completion(url, "one two three", 2)) == ["one ", "two "]
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(OSError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=2).request("GET", "/health")


def test_pieces_arrive_before_generation_ends() -> None:
    second_may_start = threading.Event()

    def slow(prompt: str, max_new_tokens: int):
        yield "first"
        # If the client only saw the first piece after the response ended, it could not
        # set the event, and this piece would report it.
        yield "second" if second_may_start.wait(timeout=10) else "not streamed"

    with TokenServer(slow) as server:
        stream = stream_completion(server.url, "x")
        assert next(stream) == "first"
        second_may_start.set()
        assert list(stream) == ["second"]


def test_bad_requests_get_a_clear_error() -> None:
    with TokenServer(words, max_new_tokens_limit=8) as server:
        with pytest.raises(RuntimeError, match="between 1 and 8"):
            list(stream_completion(server.url, "hi", max_new_tokens=100))
        connection = http.client.HTTPConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1]))
        connection.request("POST", "/generate", body=b"not json")
        response = connection.getresponse()
        assert response.status == 400 and b"prompt" in response.read()
        connection.close()


def test_server_stops_even_when_the_block_raises() -> None:
    server = TokenServer(words)
    with pytest.raises(KeyError), server:
        raise KeyError("boom")
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url


# -- export -------------------------------------------------------------------------------


def test_onnx_export_matches_pytorch_at_several_lengths(tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    model = tiny_llama()
    path = export_onnx(model, torch.randint(0, 50, (1, 8)), tmp_path / "tiny.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for length in (3, 11):
        ids = torch.randint(0, 50, (1, length))
        (onnx_logits,) = session.run(None, {"idx": ids.numpy()})
        with torch.no_grad():
            torch_logits = model(ids).numpy()
        assert onnx_logits.shape == torch_logits.shape
        assert abs(onnx_logits - torch_logits).max() < 1e-4
