"""Distributed training on one machine: a local cluster of processes, collectives written
by hand, and the jobs Part IV's chapter *Distributed training* runs on them.

Everything here runs for real with ``torch.distributed``: on CPUs with the ``gloo``
backend (what the book does on 2 cores), or on GPUs with ``nccl``, one process per GPU.

- :class:`LocalCluster` starts ``world_size`` worker processes with the ``spawn`` start
  method, joins them into one process group on ``127.0.0.1`` and keeps them alive, so a
  notebook pays the start-up cost (each process imports PyTorch) once and then runs many
  jobs with :meth:`LocalCluster.run`. Worker output goes to a log file per rank, never to
  the notebook.
- :func:`ring_reduce_scatter`, :func:`ring_all_gather` and :func:`ring_all_reduce`: the
  ring all-reduce from point-to-point ``send``/``recv``.
- :func:`average_gradients`: data parallelism by hand (one flat bucket, one ring
  all-reduce); :class:`ShardedAdamW`: ZeRO stage 1 in miniature (each rank keeps the Adam
  state of one shard of the parameters).
- :class:`ColumnParallelLinear` and :class:`RowParallelLinear`: Megatron-LM's
  tensor-parallel pair.
- Jobs for :meth:`LocalCluster.run` (they call ``torch.distributed`` themselves, as a
  ``torchrun`` script would): :func:`collectives_demo`, :func:`check_ring_all_reduce`,
  :func:`train_data_parallel`, :func:`time_all_reduce`, :func:`tensor_parallel_mlp`.

Jobs must be importable functions (defined in a module, not in a notebook), because the
``spawn`` start method sends a function to another process by its module and name.
Formulas that need no processes (ZeRO memory, all-reduce cost, pipeline schedules, launch
scripts) are in :mod:`llmzero.training.parallelism`.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import pickle
import shutil
import socket
import sys
import tempfile
import time
import traceback
import weakref
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = [
    "BACKENDS",
    "ColumnParallelLinear",
    "LocalCluster",
    "RowParallelLinear",
    "ShardedAdamW",
    "average_gradients",
    "check_ring_all_reduce",
    "collectives_demo",
    "data_parallel_steps",
    "find_free_port",
    "rank_device",
    "ring_all_gather",
    "ring_all_reduce",
    "ring_reduce_scatter",
    "state_bytes",
    "tensor_parallel_mlp",
    "time_all_reduce",
    "train_data_parallel",
    "whoami",
]

#: The backends :class:`LocalCluster` knows: ``gloo`` (CPU tensors) and ``nccl`` (GPUs).
BACKENDS = ("gloo", "nccl")


# --------------------------------------------------------------------------------------
# A cluster of processes on this machine
# --------------------------------------------------------------------------------------


def find_free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on now (the OS picks it).

    A socket bound to port 0 gets a free port; we close it and hand the number to the
    process group. Another program could take the port in between; that race is why
    ``torchrun`` also accepts a fixed ``--master-port``.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def rank_device() -> torch.device:
    """The device this rank computes on: ``cuda:<local rank>`` under NCCL, else the CPU."""
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


@contextlib.contextmanager
def _thread_limits(threads: int) -> Iterator[None]:
    """Set ``OMP_NUM_THREADS`` (and MKL's and OpenBLAS's) for the processes started inside
    the block, which inherit the environment; restore the parent's afterwards."""
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({name: str(threads) for name in names})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _worker_main(
    rank: int,
    world_size: int,
    port: int,
    backend: str,
    threads: int,
    timeout_s: float,
    log_path: str,
    connection: Any,
) -> None:
    """The body of one worker process: join the group, then run jobs until told to stop."""
    # Everything this process writes, from Python or from C++ (gloo, NCCL), goes to its
    # log file, so nothing lands in the notebook that started it.
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    torch.set_num_threads(threads)
    status = 0
    try:
        if backend == "nccl":
            torch.cuda.set_device(rank)
        dist.init_process_group(
            backend,
            init_method=f"tcp://127.0.0.1:{port}",
            rank=rank,
            world_size=world_size,
            timeout=timedelta(seconds=timeout_s),
        )
        connection.send_bytes(pickle.dumps(("ready", os.getpid())))
        while True:
            task = pickle.loads(connection.recv_bytes())
            if task is None:
                break
            job, args, kwargs = task
            try:
                reply = pickle.dumps(("ok", job(*args, **kwargs)))
            except BaseException:  # report any failure to the parent, with its traceback
                reply = pickle.dumps(("error", traceback.format_exc()))
            connection.send_bytes(reply)
    except BaseException:
        print(traceback.format_exc(), flush=True)  # to the log, which the parent reads
        status = 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        connection.close()
        sys.stdout.flush()
        sys.stderr.flush()
    # Leave without the interpreter's teardown, which takes seconds once PyTorch is loaded;
    # the process group is destroyed and every output flushed, so nothing is lost.
    os._exit(status)


class LocalCluster:
    """``world_size`` processes on this machine, joined in one ``torch.distributed`` group.

    Each process is started with the ``spawn`` method (a fresh Python interpreter, as on
    every platform PyTorch supports), limited to ``threads`` math threads, and joins the
    group over TCP on ``127.0.0.1`` at a free port; rank 0 hosts the rendezvous. Each
    worker starts with ``OMP_NUM_THREADS=threads`` (one math thread by default, so that
    ``world_size`` workers share the cores instead of fighting over them).
    :meth:`run` sends one job to every rank and returns the results in rank order.
    :meth:`close` (or leaving a ``with`` block) stops the workers cleanly: each calls
    ``destroy_process_group`` and exits.

    With ``backend="nccl"`` rank ``r`` uses GPU ``r``, so ``world_size`` must not exceed
    the number of GPUs.
    """

    def __init__(
        self,
        world_size: int = 2,
        backend: str = "gloo",
        threads: int = 1,
        timeout_s: float = 120.0,
    ) -> None:
        if not isinstance(world_size, int) or world_size < 1:
            raise ValueError(f"world_size must be a positive integer, got {world_size!r}.")
        if not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer, got {threads!r}.")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}.")
        if backend == "nccl" and torch.cuda.device_count() < world_size:
            raise ValueError(
                f"backend='nccl' needs one GPU per process: world_size={world_size}, but "
                f"{torch.cuda.device_count()} GPU(s) are visible. Use backend='gloo' on CPUs."
            )
        if not dist.is_available():
            raise RuntimeError("This PyTorch build has no torch.distributed support.")
        self.world_size = world_size
        self.backend = backend
        self.timeout_s = timeout_s
        self.port = find_free_port()
        self.log_dir = Path(tempfile.mkdtemp(prefix="llmzero-cluster-"))
        self.logs: dict[int, str] = {}
        context = multiprocessing.get_context("spawn")
        self._connections = []
        self._processes = []
        with _thread_limits(threads):  # read by PyTorch when each worker imports it
            for rank in range(world_size):
                ours, theirs = context.Pipe()
                log = str(self.log_dir / f"rank{rank}.log")
                process = context.Process(
                    target=_worker_main,
                    args=(rank, world_size, self.port, backend, threads, timeout_s, log, theirs),
                    daemon=True,
                )
                process.start()
                theirs.close()
                self._connections.append(ours)
                self._processes.append(process)
        self._finalizer = weakref.finalize(self, _kill, list(self._processes), self.log_dir)
        self.pids = [
            self._receive(rank, "joining the process group")[1] for rank in range(world_size)
        ]

    def _receive(self, rank: int, doing: str) -> tuple:
        """The next message from ``rank``; a clear error if the worker died or hung."""
        connection, process = self._connections[rank], self._processes[rank]
        deadline = time.monotonic() + self.timeout_s
        while not connection.poll(0.05):
            if not process.is_alive() or time.monotonic() > deadline:
                reason = (
                    f"exited with code {process.exitcode}"
                    if not process.is_alive()
                    else f"sent nothing for {self.timeout_s:.0f} s"
                )
                self._fail(f"Worker rank {rank} {reason} while {doing}.")
        try:
            return pickle.loads(connection.recv_bytes())
        except EOFError:
            self._fail(f"Worker rank {rank} closed its connection while {doing}.")
            raise  # unreachable: _fail raises

    def _fail(self, message: str) -> None:
        """Stop every worker and raise ``RuntimeError`` with ``message`` and their logs."""
        self.close(timeout_s=5.0)
        tails = "\n".join(
            f"--- rank {rank} output (last lines) ---\n{text[-2000:]}"
            for rank, text in self.logs.items()
            if text.strip()
        )
        raise RuntimeError(
            f"{message} The cluster has been shut down; create a new LocalCluster.\n{tails}"
        )

    @property
    def alive(self) -> bool:
        """Whether every worker process is still running."""
        return bool(self._processes) and all(p.is_alive() for p in self._processes)

    def run(self, job: Callable[..., Any], *args: Any, **kwargs: Any) -> list[Any]:
        """Run ``job(*args, **kwargs)`` on every rank at once; the results, in rank order.

        ``job`` runs inside the process group, so it can call ``dist.get_rank()``,
        ``dist.all_reduce`` and the rest. Arguments and results travel pickled, so keep
        them small (tensors are copied). If any rank raises, the cluster shuts down and
        this raises ``RuntimeError`` with that rank's traceback.
        """
        if not self.alive:
            raise RuntimeError("This LocalCluster is closed; create a new one.")
        module = getattr(job, "__module__", None)
        if module in (None, "__main__") or "<locals>" in getattr(job, "__qualname__", ""):
            raise TypeError(
                f"{job!r} is not importable: the spawned workers receive a job by its module "
                "and name, so define it in a .py module (e.g. in llmzero.training."
                "distributed) and import it, instead of defining it in the notebook."
            )
        try:
            task = pickle.dumps((job, args, kwargs))
        except Exception as error:
            raise TypeError(f"The job or its arguments cannot be pickled: {error}") from error
        for connection in self._connections:
            connection.send_bytes(task)
        replies = [
            self._receive(rank, f"running {job.__name__}") for rank in range(self.world_size)
        ]
        failed = [(rank, text) for rank, (status, text) in enumerate(replies) if status == "error"]
        if failed:
            rank, text = failed[0]
            self._fail(f"{job.__name__} raised on rank {rank}:\n{text}")
        return [result for _, result in replies]

    def close(self, timeout_s: float = 30.0) -> list[int | None]:
        """Stop the workers (each destroys its process group); their exit codes.

        Safe to call twice. Workers that do not exit within ``timeout_s`` are killed.
        The workers' output is kept in ``logs`` (rank -> text).
        """
        for connection, process in zip(self._connections, self._processes, strict=True):
            if process.is_alive():
                with contextlib.suppress(OSError):  # the worker may be exiting already
                    connection.send_bytes(pickle.dumps(None))
        deadline = time.monotonic() + timeout_s
        for process in self._processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        for connection in self._connections:
            connection.close()
        if self.log_dir.is_dir():
            for rank in range(self.world_size):
                path = self.log_dir / f"rank{rank}.log"
                self.logs[rank] = path.read_text(errors="replace") if path.is_file() else ""
        self._finalizer()  # removes the log folder
        return [process.exitcode for process in self._processes]

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.alive else "closed"
        return f"LocalCluster(world_size={self.world_size}, backend={self.backend!r}, {state})"


def _kill(processes: list, log_dir: Path) -> None:
    """Last resort when a cluster is garbage-collected or Python exits: no orphans."""
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join()
    shutil.rmtree(log_dir, ignore_errors=True)


# --------------------------------------------------------------------------------------
# Jobs that show what a process group is
# --------------------------------------------------------------------------------------


def whoami() -> dict[str, Any]:
    """This rank's view of the group: rank, world size, backend, process id, math threads."""
    return {
        "rank": dist.get_rank(),
        "world size": dist.get_world_size(),
        "backend": dist.get_backend(),
        "pid": os.getpid(),
        "torch threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }


def collectives_demo() -> dict[str, list[float]]:
    """Run each basic collective on a tiny tensor; what this rank holds after each.

    Rank ``r`` starts with ``[10 r + 1, 10 r + 2]`` (rank 0: ``[1, 2]``, rank 1:
    ``[11, 12]``, ...), so every result shows where its numbers came from.
    """
    rank, world = dist.get_rank(), dist.get_world_size()
    device = rank_device()
    mine = torch.tensor([10.0 * rank + 1, 10.0 * rank + 2], device=device)  # (2,)
    out: dict[str, list[float]] = {"start": mine.tolist()}
    broadcast = mine.clone()
    dist.broadcast(broadcast, src=0)  # everyone gets rank 0's tensor
    out["broadcast from 0"] = broadcast.tolist()
    reduced = mine.clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)  # everyone gets the sum
    out["all_reduce (sum)"] = reduced.tolist()
    gathered = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(gathered, mine)  # everyone gets everyone's tensor
    out["all_gather"] = torch.cat(gathered).tolist()
    pieces = [torch.full((1,), 100.0 * rank + j, device=device) for j in range(world)]
    scattered = torch.empty(1, device=device)
    dist.reduce_scatter(scattered, pieces)  # rank j gets the sum of everyone's piece j
    out["reduce_scatter (sum)"] = scattered.tolist()
    return out


# --------------------------------------------------------------------------------------
# The ring all-reduce, from send and recv
# --------------------------------------------------------------------------------------


def _ring_step(chunks: Sequence[Tensor], send_index: int, recv_index: int, add: bool) -> int:
    """Send one chunk to the right neighbour while receiving one from the left; bytes sent."""
    rank, world = dist.get_rank(), dist.get_world_size()
    outgoing = chunks[send_index]
    incoming = torch.empty_like(chunks[recv_index])
    request = dist.isend(outgoing, dst=(rank + 1) % world)  # does not wait ...
    dist.recv(incoming, src=(rank - 1) % world)  # ... so this receive cannot deadlock
    request.wait()
    if add:
        chunks[recv_index].add_(incoming)  # reduce: accumulate the running sum
    else:
        chunks[recv_index].copy_(incoming)  # gather: take the finished chunk
    return outgoing.numel() * outgoing.element_size()


def ring_reduce_scatter(chunks: Sequence[Tensor]) -> tuple[int, int]:
    """Sum ``chunks`` (``world_size`` views of one tensor) across ranks, chunk by chunk.

    After ``world_size - 1`` steps this rank holds the full sum of chunk ``(rank + 1) %
    world_size`` (the other chunks hold partial sums). Returns that chunk's index and the
    bytes this rank sent.
    """
    rank, world = dist.get_rank(), dist.get_world_size()
    if len(chunks) != world:
        raise ValueError(f"Need one chunk per rank ({world}), got {len(chunks)}.")
    sent = 0
    for step in range(world - 1):
        sent += _ring_step(chunks, (rank - step) % world, (rank - step - 1) % world, add=True)
    return (rank + 1) % world, sent


def ring_all_gather(chunks: Sequence[Tensor], owned: int) -> int:
    """Pass finished chunks around the ring until every rank has all of them.

    ``owned`` is the chunk this rank holds complete (what :func:`ring_reduce_scatter`
    returned, or this rank's own shard). Returns the bytes this rank sent.
    """
    world = dist.get_world_size()
    if len(chunks) != world:
        raise ValueError(f"Need one chunk per rank ({world}), got {len(chunks)}.")
    sent = 0
    for step in range(world - 1):
        sent += _ring_step(chunks, (owned - step) % world, (owned - step - 1) % world, add=False)
    return sent


def ring_all_reduce(tensor: Tensor) -> int:
    """Sum ``tensor`` across all ranks, in place, with a ring; the bytes this rank sent.

    A reduce-scatter followed by an all-gather (Patarasuk and Yuan, 2009): each rank sends
    ``2 (p - 1) / p`` times the tensor's size in all, however many ranks ``p`` there are.
    The tensor must be contiguous; any size works (chunks may differ by one element).
    """
    if not tensor.is_contiguous():
        raise ValueError("ring_all_reduce needs a contiguous tensor (call .contiguous()).")
    world = dist.get_world_size()
    if world == 1 or tensor.numel() == 0:
        return 0
    flat = tensor.view(-1)  # (n,), shares memory with tensor
    chunks = list(flat.tensor_split(world))  # p views of sizes n // p or n // p + 1
    if min(chunk.numel() for chunk in chunks) == 0:  # fewer elements than ranks
        padded = torch.zeros(world, dtype=tensor.dtype, device=tensor.device)
        padded[: flat.numel()] = flat
        sent = ring_all_reduce(padded)
        flat.copy_(padded[: flat.numel()])
        return sent
    owned, sent = ring_reduce_scatter(chunks)
    return sent + ring_all_gather(chunks, owned)


def check_ring_all_reduce(sizes: Sequence[int], seed: int = 0) -> list[dict[str, Any]]:
    """For each size, all-reduce the same random tensor with :func:`ring_all_reduce` and
    with ``dist.all_reduce``; the largest difference and the bytes the ring sent.

    Rank ``r`` draws its tensor from the generator seeded ``seed + r``, so the inputs
    differ across ranks and the caller can rebuild them to check the sum itself.
    """
    rank = dist.get_rank()
    rows = []
    for size in sizes:
        generator = torch.Generator().manual_seed(seed + rank)
        data = torch.randn(size, generator=generator).to(rank_device())  # (size,)
        ours, library = data.clone(), data.clone()
        sent = ring_all_reduce(ours)
        dist.all_reduce(library)
        rows.append(
            {
                "size": size,
                "ring result": ours.cpu(),
                "max |ring - dist.all_reduce|": (ours - library).abs().max().item(),
                "bytes sent": sent,
            }
        )
    return rows


# --------------------------------------------------------------------------------------
# Data parallelism: by hand, with DDP, with a sharded optimizer, with FSDP
# --------------------------------------------------------------------------------------


def average_gradients(model: nn.Module) -> int:
    """Average every gradient of ``model`` across ranks with one ring all-reduce; bytes sent.

    The gradients are copied into one flat buffer (a single *bucket*, so the ring runs
    once instead of once per tensor), summed across ranks, divided by the world size and
    copied back.
    """
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    bucket = torch.cat([g.reshape(-1) for g in grads])  # (n_params,)
    sent = ring_all_reduce(bucket)
    bucket /= dist.get_world_size()
    offset = 0
    for grad in grads:
        grad.copy_(bucket[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()
    return sent


class ShardedAdamW:
    """AdamW whose state is split across ranks: ZeRO stage 1 in miniature.

    The parameters are viewed as one flat vector cut into ``world_size`` equal shards.
    Each rank keeps the Adam moments (and a master copy) of one shard only. A step:

    1. reduce-scatter the gradients (:func:`ring_reduce_scatter`): this rank receives the
       summed gradient of its own shard, nothing more;
    2. an ordinary ``torch.optim.AdamW`` step on that shard;
    3. all-gather the updated shards (:func:`ring_all_gather`) back into every replica.

    The traffic equals one all-reduce, as in plain data parallelism, but the optimizer
    state per rank shrinks ``world_size``-fold (Rajbhandari et al., 2020).
    """

    def __init__(self, params: Any, **adamw_kwargs: Any) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.world = dist.get_world_size()
        self.numel = sum(p.numel() for p in self.params)
        self.shard_size = math.ceil(self.numel / self.world)  # the last shard is padded
        self.owned = (dist.get_rank() + 1) % self.world  # the chunk the ring reduces here
        start = self.owned * self.shard_size
        flat = self._flatten([p.detach() for p in self.params])  # (world * shard_size,)
        self.shard = flat[start : start + self.shard_size].clone().requires_grad_(True)
        self.optimizer = torch.optim.AdamW([self.shard], **adamw_kwargs)

    def _flatten(self, tensors: Sequence[Tensor]) -> Tensor:
        flat = torch.cat([t.reshape(-1) for t in tensors])  # (numel,)
        padding = self.world * self.shard_size - self.numel
        return torch.cat([flat, flat.new_zeros(padding)])  # (world * shard_size,)

    @torch.no_grad()
    def step(self) -> None:
        """Reduce-scatter the gradients, update this rank's shard, all-gather the shards."""
        grads = self._flatten([p.grad for p in self.params])  # (world * shard_size,)
        owned, _ = ring_reduce_scatter(list(grads.chunk(self.world)))
        assert owned == self.owned
        self.shard.grad = grads.chunk(self.world)[owned] / self.world  # mean gradient
        self.optimizer.step()
        flat = torch.empty_like(grads)
        chunks = list(flat.chunk(self.world))
        chunks[owned].copy_(self.shard)
        ring_all_gather(chunks, owned)
        offset = 0
        for param in self.params:
            param.copy_(flat[offset : offset + param.numel()].view_as(param))
            offset += param.numel()

    def zero_grad(self) -> None:
        """Forget the gradients of the (full) model parameters."""
        for param in self.params:
            param.grad = None

    def state_tensors(self) -> list[Tensor]:
        """The Adam moments this rank stores: two tensors of ``shard_size`` elements.

        (It also keeps ``shard``, the shard's own copy of the weights that AdamW
        updates; in mixed-precision training that copy is the float32 master weights.)
        """
        return [t for s in self.optimizer.state.values() for t in s.values() if t.dim() > 0]


def _local(tensor: Tensor) -> Tensor:
    """The part of ``tensor`` stored on this rank (a DTensor's local shard, or itself)."""
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


def _full(tensor: Tensor) -> Tensor:
    """The whole of ``tensor`` on this rank (gathers a DTensor; a plain tensor as is)."""
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


def state_bytes(model: nn.Module, optimizer_tensors: Sequence[Tensor]) -> dict[str, int]:
    """Bytes this rank stores for parameters, gradients and optimizer state."""

    def size(tensors: Any) -> int:
        return sum(_local(t).numel() * _local(t).element_size() for t in tensors)

    return {
        "parameters": size(model.parameters()),
        "gradients": size(p.grad for p in model.parameters() if p.grad is not None),
        "optimizer state": size(optimizer_tensors),
    }


def _fsdp_wrap(model: nn.Module) -> nn.Module:
    """Shard ``model`` with PyTorch's FSDP2 (``fully_shard``): one unit per block, one root."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(rank_device().type, (dist.get_world_size(),))
    for block in model.transformer.h:
        fully_shard(block, mesh=mesh)
    return fully_shard(model, mesh=mesh)


def _replica(
    config: Any,
    initial_state: dict[str, Tensor],
    mode: str,
    lr: float,
    weight_decay: float,
    dtype: torch.dtype,
) -> tuple[nn.Module, Any]:
    """This rank's copy of the model, made equal to rank 0's, and its optimizer."""
    from llmzero.models.gpt import GPT

    rank, device = dist.get_rank(), rank_device()
    torch.manual_seed(1000 + rank)  # a different random start on every rank ...
    model = GPT(config).to(device=device, dtype=dtype)
    if rank == 0:  # ... until rank 0's weights are broadcast
        model.load_state_dict({k: v.to(device, dtype) for k, v in initial_state.items()})
    if mode != "ddp":  # DDP broadcasts rank 0's weights itself; FSDP2 does not
        for tensor in model.state_dict().values():
            dist.broadcast(tensor, src=0)
    if mode == "ddp":
        model = nn.parallel.DistributedDataParallel(model)
    if mode == "fsdp":
        model = _fsdp_wrap(model)  # each rank keeps 1/p of every (now equal) parameter
    if mode == "zero":
        return model, ShardedAdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    return model, torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)


def data_parallel_steps(model: nn.Module, optimizer: Any, batches: Tensor, mode: str) -> dict:
    """Rank ``r``'s training loop: slice ``r`` of every batch, gradients averaged, a step."""
    rank, world = dist.get_rank(), dist.get_world_size()
    local = batches.shape[1] // world  # rows per rank
    out: dict[str, Any] = {"losses": [], "first_grads": None}
    for step, batch in enumerate(batches):  # batch: (global_batch, T + 1)
        rows = batch[rank * local : (rank + 1) * local].to(rank_device())  # (local, T + 1)
        _, loss = model(rows[:, :-1], rows[:, 1:])
        loss.backward()  # DDP and FSDP average the gradients during backward
        if mode == "ring":
            average_gradients(model)  # by hand: one flat bucket, one ring all-reduce
        if step == 0 and mode != "zero":  # ShardedAdamW never builds the averaged gradient
            out["first_grads"] = {n: _full(p.grad).cpu().clone() for n, p in _named(model)}
        optimizer.step()  # ShardedAdamW reduce-scatters the gradients here
        if step == len(batches) - 1:  # measure while the gradients still exist
            kept = optimizer.state_tensors() if mode == "zero" else _adam_state(optimizer)
            out["bytes"] = state_bytes(model, kept)
        optimizer.zero_grad()
        global_loss = loss.detach().clone()
        dist.all_reduce(global_loss)  # for the record: the mean loss over the global batch
        out["losses"].append(global_loss.item() / world)
    return out


def train_data_parallel(
    config: Any,
    initial_state: dict[str, Tensor],
    batches: Tensor,
    mode: str,
    lr: float = 3e-3,
    weight_decay: float = 0.1,
    dtype: torch.dtype = torch.float32,
) -> dict[str, Any]:
    """Train a GPT with data parallelism; what a comparison with one process needs.

    ``batches`` has shape ``(steps, global_batch, block_size + 1)``: the token windows of
    every step, the same on every rank. Rank ``r`` of ``p`` trains on rows ``r * b`` to
    ``(r + 1) * b - 1`` of each step, with ``b = global_batch / p``. ``mode`` says how the
    ranks cooperate:

    - ``"ring"``: plain model, :func:`average_gradients` after ``backward``, AdamW;
    - ``"ddp"``: ``torch.nn.parallel.DistributedDataParallel``, AdamW;
    - ``"zero"``: plain model, :class:`ShardedAdamW` (it averages the gradients itself);
    - ``"fsdp"``: PyTorch's FSDP2 (``fully_shard``), AdamW on the sharded parameters.

    Each rank builds the model with its own seed, so the ranks start *different*; rank 0
    loads ``initial_state`` and the start-up broadcast (by hand, or inside DDP) makes every
    replica equal to it. Returns the global mean loss of every step (``"losses"``), the
    averaged gradients of the first step (``"first_grads"``, full tensors; ``None`` for
    ``"zero"``), the final weights (``"final_state"``, full tensors) and the bytes this
    rank stores for parameters, gradients and optimizer state (``"bytes"``).
    """
    if mode not in ("ring", "ddp", "zero", "fsdp"):
        raise ValueError(f"mode must be 'ring', 'ddp', 'zero' or 'fsdp', got {mode!r}.")
    world = dist.get_world_size()
    if batches.dim() != 3 or batches.shape[1] % world:
        raise ValueError(
            f"batches must have shape (steps, global_batch, block_size + 1) with global_batch "
            f"divisible by the world size {world}; got {tuple(batches.shape)}."
        )
    model, optimizer = _replica(config, initial_state, mode, lr, weight_decay, dtype)
    out = data_parallel_steps(model, optimizer, batches, mode)
    out["final_state"] = {n: _full(p).detach().cpu() for n, p in _named(model)}
    return out


def _named(model: nn.Module) -> list[tuple[str, Tensor]]:
    """Named parameters without DDP's ``module.`` prefix."""
    inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    return list(inner.named_parameters())


def _adam_state(optimizer: torch.optim.Optimizer) -> list[Tensor]:
    """The moment tensors of a ``torch.optim`` Adam/AdamW (its scalar step counts left out)."""
    return [t for s in optimizer.state.values() for t in s.values() if t.dim() > 0]


# --------------------------------------------------------------------------------------
# Measuring communication
# --------------------------------------------------------------------------------------


def time_all_reduce(sizes: Sequence[int], repeats: int = 5, warmup: int = 2) -> list[float]:
    """The time, in seconds, of ``dist.all_reduce`` on float32 tensors of ``sizes``
    elements: for each size the fastest of ``repeats`` runs (after ``warmup`` untimed ones),
    on the slowest rank. Every rank returns the same list.

    The fastest run, not the mean: other programs on the machine can only ever add time,
    so the minimum is the best estimate of what the operation itself costs.
    """
    device = rank_device()
    fastest = []
    for size in sizes:
        tensor = torch.ones(size, device=device)  # (size,)
        samples = []
        for attempt in range(warmup + repeats):
            dist.barrier()  # start together, so we time the exchange, not the waiting
            start = time.perf_counter()
            dist.all_reduce(tensor)
            if device.type == "cuda":
                torch.cuda.synchronize()  # GPU collectives return before they finish
            if attempt >= warmup:
                samples.append(time.perf_counter() - start)
        best = torch.tensor(min(samples), dtype=torch.float64)
        dist.all_reduce(best, op=dist.ReduceOp.MAX)
        fastest.append(best.item())
    return fastest


# --------------------------------------------------------------------------------------
# Tensor parallelism (Megatron-LM)
# --------------------------------------------------------------------------------------


class _CopyToParallel(torch.autograd.Function):
    """Identity forward; all-reduce backward (Megatron's ``f``): every rank used the input,
    so the input's gradient is the sum of every rank's contribution."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad


class _ReduceFromParallel(torch.autograd.Function):
    """All-reduce forward (Megatron's ``g``): sum the partial outputs; identity backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        x = x.contiguous()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return grad


class ColumnParallelLinear(nn.Module):
    """A linear layer whose *output* features are split across ranks.

    Rank ``r`` keeps rows ``r * out / p`` to ``(r + 1) * out / p - 1`` of the weight
    ``(out, in)`` and the matching bias, and computes its slice of the output from the
    full input. Build it from an ordinary layer with :meth:`from_linear`.
    """

    def __init__(self, weight_shard: Tensor, bias_shard: Tensor | None) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight_shard)  # (out / p, in)
        self.bias = None if bias_shard is None else nn.Parameter(bias_shard)  # (out / p,)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> ColumnParallelLinear:
        """This rank's share of ``linear`` (the same full layer on every rank)."""
        rank, world = dist.get_rank(), dist.get_world_size()
        if linear.out_features % world:
            raise ValueError(f"out_features {linear.out_features} must divide by {world}.")
        rows = slice(rank * linear.out_features // world, (rank + 1) * linear.out_features // world)
        bias = None if linear.bias is None else linear.bias.detach()[rows].clone()
        return cls(linear.weight.detach()[rows].clone(), bias)

    def forward(self, x: Tensor) -> Tensor:  # x: (..., in) -> (..., out / p)
        return nn.functional.linear(_CopyToParallel.apply(x), self.weight, self.bias)


class RowParallelLinear(nn.Module):
    """A linear layer whose *input* features are split across ranks.

    Rank ``r`` keeps columns ``r * in / p`` to ``(r + 1) * in / p - 1`` of the weight
    ``(out, in)``, multiplies its slice of the input (the output of a
    :class:`ColumnParallelLinear`) and the partial results are summed by one all-reduce;
    the bias is added once, after the sum.
    """

    def __init__(self, weight_shard: Tensor, bias: Tensor | None) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight_shard)  # (out, in / p)
        self.bias = None if bias is None else nn.Parameter(bias)  # (out,), on every rank

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> RowParallelLinear:
        """This rank's share of ``linear`` (the same full layer on every rank)."""
        rank, world = dist.get_rank(), dist.get_world_size()
        if linear.in_features % world:
            raise ValueError(f"in_features {linear.in_features} must divide by {world}.")
        cols = slice(rank * linear.in_features // world, (rank + 1) * linear.in_features // world)
        bias = None if linear.bias is None else linear.bias.detach().clone()
        return cls(linear.weight.detach()[:, cols].clone(), bias)

    def forward(self, x_shard: Tensor) -> Tensor:  # (..., in / p) -> (..., out)
        partial = nn.functional.linear(x_shard, self.weight)  # (..., out), one rank's share
        out = _ReduceFromParallel.apply(partial)  # (..., out), the sum over ranks
        return out if self.bias is None else out + self.bias


def tensor_parallel_mlp(
    fc: nn.Linear, proj: nn.Linear, x: Tensor, grad_output: Tensor
) -> dict[str, Tensor]:
    """Run GPT's MLP, ``proj(gelu(fc(x)))``, split across the ranks; output and gradients.

    ``fc`` becomes a :class:`ColumnParallelLinear`, ``proj`` a :class:`RowParallelLinear`:
    one all-reduce in the forward pass, one in the backward. Backpropagates
    ``grad_output`` and returns the output, the input's gradient and this rank's weight
    shards and their gradients, for comparison with the unsplit layers.
    """
    device = rank_device()
    column = ColumnParallelLinear.from_linear(fc).to(device)
    row = RowParallelLinear.from_linear(proj).to(device)
    x = x.to(device).requires_grad_(True)  # (batch, seq, d)
    hidden = nn.functional.gelu(column(x), approximate="tanh")  # (batch, seq, 4d / p)
    out = row(hidden)  # (batch, seq, d)
    out.backward(grad_output.to(device))
    return {
        "output": out.detach().cpu(),
        "input grad": x.grad.cpu(),
        "fc weight shard": column.weight.detach().cpu(),
        "fc weight grad": column.weight.grad.cpu(),
        "proj weight grad": row.weight.grad.cpu(),
    }
