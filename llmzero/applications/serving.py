"""Serving a language model: measured step times, a batching simulator, a streaming endpoint.

Part VII's chapter *Efficient inference and deployment* builds these pieces:

- :func:`time_decode_steps` measures, on this machine, how long one prefill and one decode
  step of this package's GPT or Llama take for a batch of sequences (with a
  :class:`~llmzero.models.decoding.KVCache`), and :class:`StepTimes` interpolates those
  measurements for any batch size;
- :func:`make_requests` draws a reproducible stream of requests (Poisson arrivals, varied
  prompt and reply lengths) and :func:`simulate` replays it through a server that runs
  with *static* batching (a batch runs until its longest reply is done) or *continuous*
  batching (Orca's iteration-level scheduling: finished sequences leave and waiting ones
  join after every decode step), charging each iteration the measured step time;
  :class:`SimulationResult` gives throughput, latency and time to the first token;
- :class:`TokenServer` is a small HTTP endpoint on ``127.0.0.1`` (the standard library's
  ``ThreadingHTTPServer`` in a background thread, a context manager that always shuts it
  down) that streams the generated text as server-sent events over chunked transfer, and
  :func:`stream_completion` is its client;
- :class:`LogitsOnly` and :func:`export_onnx` export a model to ONNX with
  ``torch.onnx.export(..., dynamo=True)`` (a variable sequence length), ready for
  ``onnxruntime.InferenceSession``.

The simulator is a model of a server, not a server: it assumes one decode step costs
what it cost when measured, whatever the sequences' lengths, and that prefill costs a
fixed time per prompt token.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmzero.models.decoding import KVCache

__all__ = [
    "LogitsOnly",
    "Request",
    "RequestRecord",
    "SimulationResult",
    "StepTimes",
    "TokenServer",
    "export_onnx",
    "make_requests",
    "simulate",
    "stream_completion",
    "time_decode_steps",
]


# ------------------------------------------------------------------------------ step times


@torch.no_grad()
def time_decode_steps(
    model: Any, batch_size: int, prompt_length: int, steps: int, vocab_size: int, seed: int = 0
) -> tuple[float, list[float]]:
    """Time one prefill of ``batch_size`` random prompts of ``prompt_length`` tokens, then
    ``steps`` decode steps (one new token per sequence each), with a KV cache.

    Returns ``(prefill_seconds, [seconds of each decode step])``. ``model`` is this
    package's GPT or Llama (``model(ids, cache=...)``); random token ids cost the same as
    real ones.
    """
    if batch_size < 1 or prompt_length < 1 or steps < 1:
        raise ValueError(
            f"batch_size, prompt_length and steps must be >= 1, got {batch_size}, "
            f"{prompt_length} and {steps}."
        )
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    ids = torch.randint(0, vocab_size, (batch_size, prompt_length), generator=generator)
    cache = KVCache()
    start = time.perf_counter()
    model(ids.to(device), cache=cache)  # (B, T, V): the prefill fills the cache
    if device.type == "cuda":
        torch.cuda.synchronize()  # GPU work is asynchronous: wait for it before reading the clock
    prefill = time.perf_counter() - start
    step_seconds = []
    for _ in range(steps):
        new = torch.randint(0, vocab_size, (batch_size, 1), generator=generator).to(device)
        start = time.perf_counter()
        model(new, cache=cache)  # (B, 1, V): one decode step
        if device.type == "cuda":
            torch.cuda.synchronize()
        step_seconds.append(time.perf_counter() - start)
    return prefill, step_seconds


@dataclass
class StepTimes:
    """Measured costs of a server's iterations: ``decode[b]`` is the seconds of one decode
    step with ``b`` sequences (measured at a few batch sizes, interpolated linearly between
    them and extrapolated from the last two beyond), ``prefill_per_token`` the seconds
    per prompt token of a prefill."""

    batch_sizes: Sequence[int]
    decode_seconds: Sequence[float]
    prefill_per_token: float

    def __post_init__(self) -> None:
        if len(self.batch_sizes) != len(self.decode_seconds) or len(self.batch_sizes) < 2:
            raise ValueError(
                "Give at least two batch sizes and one decode time for each, got "
                f"{len(self.batch_sizes)} and {len(self.decode_seconds)}."
            )
        if list(self.batch_sizes) != sorted(set(self.batch_sizes)):
            raise ValueError(f"batch_sizes must increase, got {list(self.batch_sizes)}.")

    def decode(self, batch_size: int) -> float:
        """Seconds of one decode step for ``batch_size`` sequences."""
        sizes, seconds = list(self.batch_sizes), list(self.decode_seconds)
        if batch_size <= sizes[-1]:
            return float(np.interp(batch_size, sizes, seconds))
        slope = (seconds[-1] - seconds[-2]) / (sizes[-1] - sizes[-2])
        return seconds[-1] + slope * (batch_size - sizes[-1])

    def prefill(self, prompt_tokens: int) -> float:
        """Seconds to prefill ``prompt_tokens`` prompt tokens (all new sequences together)."""
        return self.prefill_per_token * prompt_tokens


# ------------------------------------------------------------------------------ simulator


@dataclass(frozen=True)
class Request:
    """One request: when it arrives (seconds), its prompt length and how many tokens its
    reply has (known to the simulator, not to the scheduler)."""

    arrival: float
    prompt_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class RequestRecord:
    """What happened to one request: its arrival, when its first and last token were
    produced (seconds)."""

    request: Request
    first_token: float
    finish: float

    @property
    def latency(self) -> float:
        """Seconds from arrival to the last token."""
        return self.finish - self.request.arrival

    @property
    def time_to_first_token(self) -> float:
        """Seconds from arrival to the first token."""
        return self.first_token - self.request.arrival


@dataclass
class SimulationResult:
    """The records of every request of one simulated run, and the summaries."""

    policy: str
    records: list[RequestRecord] = field(default_factory=list)
    busy_seconds: float = 0.0

    @property
    def makespan(self) -> float:
        """Seconds from the first arrival to the last token."""
        start = min(r.request.arrival for r in self.records)
        return max(r.finish for r in self.records) - start

    @property
    def throughput(self) -> float:
        """Generated tokens per second over the makespan."""
        return sum(r.request.output_tokens for r in self.records) / self.makespan

    def latency(self, quantile: float | None = None) -> float:
        """Mean latency, or its ``quantile`` (e.g. 0.9), in seconds."""
        values = [r.latency for r in self.records]
        return float(np.mean(values) if quantile is None else np.quantile(values, quantile))

    def time_to_first_token(self) -> float:
        """Mean time to the first token, in seconds."""
        return float(np.mean([r.time_to_first_token for r in self.records]))


def make_requests(
    n: int,
    rate: float,
    prompt_tokens: tuple[int, int] = (8, 64),
    output_tokens: tuple[int, int] = (4, 128),
    seed: int = 0,
) -> list[Request]:
    """``n`` requests arriving as a Poisson process of ``rate`` requests per second, with
    prompt and reply lengths drawn uniformly from the inclusive ranges given."""
    if n < 1 or not rate > 0:
        raise ValueError(f"Need n >= 1 and rate > 0, got n={n} and rate={rate}.")
    for low, high in (prompt_tokens, output_tokens):
        if not 1 <= low <= high:
            raise ValueError(f"A length range must satisfy 1 <= low <= high, got {low, high}.")
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1.0 / rate, size=n))
    prompts = rng.integers(prompt_tokens[0], prompt_tokens[1] + 1, size=n)
    outputs = rng.integers(output_tokens[0], output_tokens[1] + 1, size=n)
    return [
        Request(float(time_), int(p), int(o))
        for time_, p, o in zip(arrivals, prompts, outputs, strict=True)
    ]


def simulate(
    requests: Sequence[Request], step_times: StepTimes, max_batch: int, policy: str
) -> SimulationResult:
    """Replay ``requests`` through one model server that runs at most ``max_batch``
    sequences at once, with ``policy`` ``"static"`` or ``"continuous"`` batching.

    Both take the waiting requests in arrival order whenever there is room. An iteration
    prefills the sequences that join (:meth:`StepTimes.prefill` of their prompt tokens; the
    prefill writes each one's first token) and then runs one decode step for every
    running sequence that still needs tokens (:meth:`StepTimes.decode` of their number).
    With ``"static"`` batching new requests join only when the whole batch has finished;
    with ``"continuous"`` batching they join at the next iteration, into the places that
    finished sequences left.
    """
    if policy not in ("static", "continuous"):
        raise ValueError(f"policy must be 'static' or 'continuous', got {policy!r}.")
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}.")
    if not requests:
        raise ValueError("Give at least one request.")
    queue = sorted(requests, key=lambda r: r.arrival)
    result = SimulationResult(policy=policy)
    running: list[list[Any]] = []  # [request, tokens produced, first-token time]
    clock, next_index = 0.0, 0
    while next_index < len(queue) or running:
        if not running and queue[next_index].arrival > clock:
            clock = queue[next_index].arrival  # idle until the next request arrives
        joining = []
        if policy == "continuous" or not running:
            while (
                next_index < len(queue)
                and queue[next_index].arrival <= clock
                and len(running) + len(joining) < max_batch
            ):
                joining.append(queue[next_index])
                next_index += 1
        seconds = step_times.prefill(sum(r.prompt_tokens for r in joining))
        active = [seq for seq in running if seq[1] < seq[0].output_tokens]
        if active:  # sequences that are done but wait for their batch cost nothing here
            seconds += step_times.decode(len(active))
        clock += seconds
        result.busy_seconds += seconds
        for seq in active:
            seq[1] += 1
        running += [[request, 1, clock] for request in joining]  # prefill wrote token 1
        batch_done = all(seq[1] >= seq[0].output_tokens for seq in running)
        for seq in list(running):
            # Static batching returns a batch's replies together, when its longest is done.
            if seq[1] >= seq[0].output_tokens and (policy == "continuous" or batch_done):
                result.records.append(RequestRecord(seq[0], seq[2], clock))
                running.remove(seq)
    return result


# ------------------------------------------------------------------------------ HTTP endpoint


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # needed for chunked transfer
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Write no access log (the default writes every request to stderr)."""

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send_json(200, {"status": "ok"})
        else:
            self._send_json(404, {"error": f"No route {self.path}: use POST /generate."})

    def do_POST(self) -> None:
        if self.path != "/generate":
            self._send_json(404, {"error": f"No route {self.path}: use POST /generate."})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError as error:  # json.JSONDecodeError is a ValueError too
            message = f'The body is not JSON ({error}): send {{"prompt": "...", ...}}.'
            self._send_json(400, {"error": message})
            return
        try:
            prompt, max_new_tokens = _parse_body(body, self.server.max_new_tokens_limit)
        except ValueError as error:
            self._send_json(400, {"error": str(error)})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        with self.server.model_lock:  # one generation at a time: the model is not batched
            for piece in self.server.token_stream(prompt, max_new_tokens):
                self._send_chunk(f"data: {json.dumps({'text': piece})}\n\n")
        self._send_chunk("data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")  # the last, empty chunk ends the response

    def _send_chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()  # send it now: this is what makes the stream a stream


def _parse_body(body: Any, limit: int) -> tuple[str, int]:
    if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
        raise ValueError('Send a JSON object with a string "prompt", e.g. {"prompt": "Hi"}.')
    max_new_tokens = body.get("max_new_tokens", 16)
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
        raise ValueError(f'"max_new_tokens" must be an integer, got {max_new_tokens!r}.')
    if not 1 <= max_new_tokens <= limit:
        raise ValueError(f'"max_new_tokens" must be between 1 and {limit}, got {max_new_tokens}.')
    return body["prompt"], max_new_tokens


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # request threads never keep the interpreter alive
    token_stream: Callable[[str, int], Iterator[str]]
    model_lock: threading.Lock
    max_new_tokens_limit: int


class TokenServer:
    """A streaming text-generation endpoint on ``127.0.0.1``, run in a background thread.

    ``token_stream(prompt, max_new_tokens)`` yields pieces of text (e.g.
    :func:`~llmzero.models.decoding.stream_text` over
    :func:`~llmzero.models.decoding.iter_generate`). ``POST /generate`` with the JSON body
    ``{"prompt": ..., "max_new_tokens": ...}`` answers with server-sent events,
    ``data: {"text": piece}``, one per piece as soon as it exists, then ``data: [DONE]``;
    ``GET /health`` answers ``{"status": "ok"}``. Bad requests get status 400 with a JSON
    error that says what to send. Requests are served one at a time (a lock around the
    model). Use it as a context manager::

        with TokenServer(token_stream) as server:
            for piece in stream_completion(server.url, "Hello"):
                print(piece, end="")

    ``port=0`` (the default) takes a free port; :attr:`url` says which.
    """

    def __init__(
        self,
        token_stream: Callable[[str, int], Iterator[str]],
        port: int = 0,
        max_new_tokens_limit: int = 256,
    ) -> None:
        self.token_stream = token_stream
        self.port = port
        self.max_new_tokens_limit = max_new_tokens_limit
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` of the running server."""
        if self._server is None:
            raise RuntimeError("The server is not running: use `with TokenServer(...) as s:`.")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> TokenServer:
        """Bind ``127.0.0.1`` and serve in a background thread."""
        if self._server is not None:
            raise RuntimeError("The server is already running.")
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.token_stream = self.token_stream
        server.model_lock = threading.Lock()
        server.max_new_tokens_limit = self.max_new_tokens_limit
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and wait for the thread (safe to call twice)."""
        if self._server is None:
            return
        self._server.shutdown()  # ends serve_forever
        self._server.server_close()  # releases the port
        if self._thread is not None:
            self._thread.join()
        self._server, self._thread = None, None

    def __enter__(self) -> TokenServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()  # always, even when the block raised


def stream_completion(
    url: str, prompt: str, max_new_tokens: int = 16, timeout: float = 60.0
) -> Iterator[str]:
    """Send ``prompt`` to a :class:`TokenServer` at ``url`` and yield the pieces of text as
    they arrive. Raises ``RuntimeError`` with the server's message if it refuses."""
    host_port = url.removeprefix("http://")
    host, _, port = host_port.partition(":")
    connection = http.client.HTTPConnection(host, int(port) if port else 80, timeout=timeout)
    try:
        body = json.dumps({"prompt": prompt, "max_new_tokens": max_new_tokens})
        connection.request(
            "POST", "/generate", body=body, headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        if response.status != 200:
            message = json.loads(response.read() or b"{}").get("error", response.reason)
            raise RuntimeError(f"The server answered {response.status}: {message}")
        while line := response.readline():  # http.client undoes the chunking
            text = line.decode().strip()
            if not text.startswith("data: "):
                continue  # the blank line between events
            data = text.removeprefix("data: ")
            if data == "[DONE]":
                break
            yield json.loads(data)["text"]
    finally:
        connection.close()


# ------------------------------------------------------------------------------ export


class LogitsOnly(torch.nn.Module):
    """Wrap this package's GPT or Llama so that ``forward(idx (B, T))`` returns only the
    logits ``(B, T, V)``, without a cache or a loss: the graph an exporter should see."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        out = self.model(idx)
        return out[0] if isinstance(out, tuple) else out  # GPT returns (logits, loss)


def export_onnx(
    model: torch.nn.Module, example_ids: torch.Tensor, path: str | Path, max_seq_len: int = 2048
) -> Path:
    """Export ``model`` (wrapped in :class:`LogitsOnly`) to the ONNX file ``path`` with
    ``torch.onnx.export(..., dynamo=True)``, the sequence length (dimension 1 of the input
    ``idx``) left variable up to ``max_seq_len`` and the batch size fixed to the example's.
    Returns the path (the weights may sit beside it in ``path.data``). The book's Llama
    exports this way; its GPT only with the example's exact shape, because it hands SDPA a
    Python bool that depends on the length.
    """
    wrapper = LogitsOnly(model).eval()
    seq = torch.export.Dim("seq", min=1, max=max_seq_len)
    # The exporter logs that torchvision's operators are skipped (it is not installed, and
    # not needed here) and pytree raises a FutureWarning from inside torch; both would be
    # stderr in the book's output, where every stderr line counts as an error.
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    old_level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
            torch.onnx.export(
                wrapper,
                (example_ids,),
                str(path),
                dynamo=True,
                verbose=False,
                input_names=["idx"],
                output_names=["logits"],
                dynamic_shapes=({1: seq},),
            )
    finally:
        registration.setLevel(old_level)
    return Path(path)
