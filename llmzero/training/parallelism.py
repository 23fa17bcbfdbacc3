"""Distributed training on paper: memory, communication, pipeline schedules, launch scripts.

The formulas a practitioner uses to plan a multi-GPU run, written as small functions so
that Part IV's chapter *Distributed training* can check them against measurements on
processes it really runs (:mod:`llmzero.training.distributed`):

- :func:`zero_memory_per_device`: bytes of model state per GPU under ZeRO stages 0-3
  (Rajbhandari et al., 2020), for mixed-precision Adam by default;
- :func:`ring_all_reduce_bytes` and :func:`ring_all_reduce_time`: the ring all-reduce's
  traffic and its time in the latency-bandwidth (alpha-beta) model, and
  :func:`fit_latency_bandwidth`, which fits that model to measured times;
- :func:`pipeline_schedule`, :func:`bubble_fraction`, :func:`measured_bubble` and
  :func:`peak_in_flight`: GPipe and 1F1B pipeline schedules, simulated;
- :func:`torchrun_command` and :func:`slurm_script`: how a job is launched on many GPUs.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ZERO_STAGES",
    "PipelineOp",
    "bubble_fraction",
    "fit_latency_bandwidth",
    "measured_bubble",
    "peak_in_flight",
    "pipeline_schedule",
    "ring_all_reduce_bytes",
    "ring_all_reduce_time",
    "slurm_script",
    "torchrun_command",
    "zero_memory_per_device",
]

#: What each ZeRO stage shards across the data-parallel GPUs (stage 0 is plain DDP).
ZERO_STAGES = {
    0: "nothing (plain data parallelism)",
    1: "optimizer states",
    2: "optimizer states and gradients",
    3: "optimizer states, gradients and parameters",
}


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value!r}.")


# --------------------------------------------------------------------------------------
# Memory: ZeRO
# --------------------------------------------------------------------------------------


def zero_memory_per_device(
    n_params: float,
    n_devices: int,
    stage: int,
    param_bytes: float = 2,
    grad_bytes: float = 2,
    optimizer_bytes: float = 12,
) -> float:
    """Bytes of model state per device when ``n_devices`` train one model with ZeRO.

    The defaults are mixed-precision Adam as Rajbhandari et al. (2020) count it: 2 bytes
    per parameter for the 16-bit weights, 2 for the 16-bit gradients and ``K = 12`` for
    the optimizer (a float32 master copy of the weights, Adam's two float32 moments).
    Stage 1 divides the optimizer term by ``n_devices``, stage 2 the gradients too, stage
    3 everything:

    - stage 0: ``(2 + 2 + K) Psi``;  stage 1: ``(2 + 2) Psi + K Psi / N``;
    - stage 2: ``2 Psi + (2 + K) Psi / N``;  stage 3: ``(2 + 2 + K) Psi / N``.

    Activations, temporary buffers and fragmentation come on top.
    """
    _positive("n_params", n_params)
    if not isinstance(n_devices, int) or n_devices < 1:
        raise ValueError(f"n_devices must be a positive integer, got {n_devices!r}.")
    if stage not in ZERO_STAGES:
        raise ValueError(f"stage must be 0, 1, 2 or 3 (ZeRO's stages), got {stage!r}.")
    shard = [1.0] * 3  # divisors of the parameter, gradient and optimizer terms
    for term in range(stage):  # stage 1 shards the optimizer, 2 also grads, 3 also params
        shard[2 - term] = n_devices
    return n_params * (param_bytes / shard[0] + grad_bytes / shard[1] + optimizer_bytes / shard[2])


# --------------------------------------------------------------------------------------
# Communication: the ring all-reduce and the alpha-beta model
# --------------------------------------------------------------------------------------


def ring_all_reduce_bytes(n_bytes: float, n_devices: int) -> float:
    """Bytes each device sends (and receives) in a ring all-reduce of ``n_bytes``:
    ``2 (p - 1) / p * n_bytes`` (a reduce-scatter, then an all-gather)."""
    if not isinstance(n_devices, int) or n_devices < 1:
        raise ValueError(f"n_devices must be a positive integer, got {n_devices!r}.")
    return 2 * (n_devices - 1) / n_devices * n_bytes


def ring_all_reduce_time(
    n_bytes: float, n_devices: int, bandwidth: float, latency: float = 0.0
) -> float:
    """Seconds for a ring all-reduce of ``n_bytes`` over ``n_devices`` in the alpha-beta
    model: ``2 (p - 1)`` messages, each paying ``latency`` (alpha, seconds), and
    :func:`ring_all_reduce_bytes` sent at ``bandwidth`` (bytes per second, one direction)."""
    _positive("bandwidth", bandwidth)
    messages = 2 * (n_devices - 1)
    return messages * latency + ring_all_reduce_bytes(n_bytes, n_devices) / bandwidth


def fit_latency_bandwidth(
    n_bytes: Sequence[float], seconds: Sequence[float]
) -> tuple[float, float]:
    """Fit ``t = alpha + n * beta`` to measured times; returns ``(alpha, beta)``.

    Least squares on the *relative* error (each equation divided by its measured time),
    so that microsecond-scale small messages weigh as much as the big ones: with plain
    least squares the largest sizes would decide alpha too. ``1 / beta`` is the effective
    bandwidth in bytes per second.
    """
    sizes = np.asarray(n_bytes, dtype=float)
    times = np.asarray(seconds, dtype=float)
    if sizes.shape != times.shape or sizes.ndim != 1 or len(sizes) < 2:
        raise ValueError("Need two 1-D sequences of the same length, with at least 2 points.")
    if np.any(times <= 0) or np.any(sizes < 0):
        raise ValueError("Times must be positive and sizes non-negative.")
    design = np.stack([1.0 / times, sizes / times], axis=1)  # (n, 2): [1/t, n/t]
    (alpha, beta), *_ = np.linalg.lstsq(design, np.ones_like(times), rcond=None)
    return float(alpha), float(beta)


# --------------------------------------------------------------------------------------
# Pipeline parallelism: schedules
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PipelineOp:
    """One forward (``"F"``) or backward (``"B"``) pass of one micro-batch on one stage."""

    stage: int
    microbatch: int
    kind: str
    start: float
    end: float


def _stage_order(stage: int, n_stages: int, n_microbatches: int, schedule: str) -> list:
    """The order in which one stage runs its passes, as ``(kind, microbatch)`` pairs."""
    forwards = [("F", j) for j in range(n_microbatches)]
    if schedule == "gpipe":  # all forwards, then all backwards (the last one first)
        return forwards + [("B", j) for j in reversed(range(n_microbatches))]
    # 1F1B: a few forwards to fill the pipe, then one forward, one backward, ...
    warmup = min(n_stages - stage - 1, n_microbatches)
    order = forwards[:warmup]
    for j in range(warmup, n_microbatches):
        order += [("F", j), ("B", j - warmup)]
    return order + [("B", j) for j in range(n_microbatches - warmup, n_microbatches)]


def pipeline_schedule(
    n_stages: int,
    n_microbatches: int,
    schedule: str = "gpipe",
    forward_time: float = 1.0,
    backward_time: float = 2.0,
) -> list[PipelineOp]:
    """Simulate a synchronous pipeline; every pass with its start and end time.

    Stage ``s`` runs its passes in the order the schedule fixes (``"gpipe"``: all
    forwards, then all backwards, Huang et al., 2019; ``"1f1b"``: one forward, one
    backward, as in PipeDream-Flush, Narayanan et al., 2021), each as soon as the stage is
    free and its input is ready: the forward of micro-batch ``j`` needs stage ``s - 1``'s
    forward of ``j``; the backward needs stage ``s + 1``'s backward of ``j``.
    """
    for name, value in (("n_stages", n_stages), ("n_microbatches", n_microbatches)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    if schedule not in ("gpipe", "1f1b"):
        raise ValueError(f"schedule must be 'gpipe' or '1f1b', got {schedule!r}.")
    _positive("forward_time", forward_time)
    _positive("backward_time", backward_time)
    orders = [_stage_order(s, n_stages, n_microbatches, schedule) for s in range(n_stages)]
    done: dict[tuple[str, int, int], float] = {}  # (kind, stage, microbatch) -> end time
    free = [0.0] * n_stages  # when each stage finishes its last pass
    position = [0] * n_stages  # the next pass each stage runs
    ops = []
    while len(ops) < 2 * n_stages * n_microbatches:
        progressed = False
        for s in range(n_stages):
            if position[s] == len(orders[s]):
                continue
            kind, j = orders[s][position[s]]
            if kind == "F":
                needs = ("F", s - 1, j) if s > 0 else None
            else:
                needs = ("B", s + 1, j) if s < n_stages - 1 else ("F", s, j)
            if needs is not None and needs not in done:
                continue  # its input is not ready yet
            start = max(free[s], done[needs] if needs else 0.0)
            end = start + (forward_time if kind == "F" else backward_time)
            ops.append(PipelineOp(s, j, kind, start, end))
            done[(kind, s, j)] = free[s] = end
            position[s] += 1
            progressed = True
        if not progressed:  # cannot happen for the two schedules above
            raise RuntimeError("The schedule deadlocked.")
    return sorted(ops, key=lambda op: (op.start, op.stage))


def bubble_fraction(n_stages: int, n_microbatches: int) -> float:
    """The idle share of a GPipe or 1F1B pipeline: ``(p - 1) / (m + p - 1)``."""
    return (n_stages - 1) / (n_microbatches + n_stages - 1)


def measured_bubble(ops: Sequence[PipelineOp]) -> float:
    """The share of stage-time spent idle in a simulated schedule (all stages together)."""
    n_stages = 1 + max(op.stage for op in ops)
    makespan = max(op.end for op in ops)
    busy = sum(op.end - op.start for op in ops)
    return 1.0 - busy / (n_stages * makespan)


def peak_in_flight(ops: Sequence[PipelineOp], stage: int = 0) -> int:
    """The most micro-batches whose activations ``stage`` holds at once (from the end of a
    micro-batch's forward pass to the end of its backward pass, which needs them): the
    pipeline's activation memory, in micro-batches."""
    events = [(op.end, 1 if op.kind == "F" else -1) for op in ops if op.stage == stage]
    held = peak = 0
    for _, change in sorted(events, key=lambda event: (event[0], event[1])):
        held += change
        peak = max(peak, held)
    return peak


# --------------------------------------------------------------------------------------
# Launching a job
# --------------------------------------------------------------------------------------


def torchrun_command(
    script: str,
    nnodes: int = 1,
    nproc_per_node: int = 8,
    rdzv_endpoint: str = "$HEAD_NODE:29500",
    rdzv_id: str = "$JOB_ID",
    script_args: Sequence[str] = (),
) -> str:
    """The ``torchrun`` command that starts ``nproc_per_node`` workers on each node.

    One node: ``--standalone`` (a local rendezvous on a free port). Several: the same
    command runs on every node; they meet at ``rdzv_endpoint`` (``host:port`` of one of
    them, via the ``c10d`` rendezvous backend) under the shared ``rdzv_id``.
    """
    for name, value in (("nnodes", nnodes), ("nproc_per_node", nproc_per_node)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    parts = ["torchrun"]
    if nnodes == 1:
        parts += ["--standalone", f"--nproc-per-node={nproc_per_node}"]
    else:
        if ":" not in rdzv_endpoint:
            raise ValueError(f"rdzv_endpoint must be host:port, got {rdzv_endpoint!r}.")
        parts += [
            f"--nnodes={nnodes}",
            f"--nproc-per-node={nproc_per_node}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={rdzv_endpoint}",
            f"--rdzv-id={rdzv_id}",
        ]
    return " ".join([*parts, script, *(shlex.quote(arg) for arg in script_args)])


def slurm_script(
    script: str,
    nodes: int,
    gpus_per_node: int = 8,
    cpus_per_node: int = 64,
    hours: int = 24,
    job_name: str = "pretrain",
    port: int = 29500,
    script_args: Sequence[str] = (),
) -> str:
    """A Slurm batch script (for ``sbatch``) that runs ``script`` on ``nodes`` x
    ``gpus_per_node`` GPUs: one ``torchrun`` per node, started by ``srun``, meeting at
    the job's first node."""
    for name, value in (("nodes", nodes), ("gpus_per_node", gpus_per_node), ("hours", hours)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    threads = max(1, cpus_per_node // gpus_per_node)
    flags = [
        '--nnodes="$SLURM_NNODES"',
        f"--nproc-per-node={gpus_per_node}",
        "--rdzv-backend=c10d",
        f'--rdzv-endpoint="$head_node:{port}"',
        '--rdzv-id="$SLURM_JOB_ID"',
    ]
    program = " ".join([script, *(shlex.quote(arg) for arg in script_args)])
    launch = " \\\n    ".join(["srun torchrun", *flags, program])
    return "\n".join(
        [
            "#!/bin/bash",
            f"#SBATCH --job-name={job_name}",
            f"#SBATCH --nodes={nodes}",
            "#SBATCH --ntasks-per-node=1  # one torchrun per node; it starts the workers",
            f"#SBATCH --gpus-per-node={gpus_per_node}",
            f"#SBATCH --cpus-per-task={cpus_per_node}",
            f"#SBATCH --time={hours}:00:00",
            "#SBATCH --output=%x-%j.out  # job name and job id",
            "",
            "# The first node of the allocation hosts the rendezvous.",
            'head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
            f"export OMP_NUM_THREADS={threads}  # CPU threads per worker process",
            "",
            launch,
            "",
        ]
    )
