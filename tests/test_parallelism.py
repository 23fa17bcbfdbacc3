"""Tests of llmzero.training.parallelism: ZeRO memory, all-reduce cost, pipeline schedules,
launch scripts. No processes are started."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from llmzero.training import parallelism
from llmzero.training.parallelism import (
    bubble_fraction,
    fit_latency_bandwidth,
    measured_bubble,
    peak_in_flight,
    pipeline_schedule,
    ring_all_reduce_bytes,
    ring_all_reduce_time,
    slurm_script,
    torchrun_command,
    zero_memory_per_device,
)


def test_zero_memory_reproduces_figure_1_of_the_zero_paper():
    # Rajbhandari et al. (2020), Figure 1: 7.5B parameters, 64 GPUs, K = 12.
    gigabytes = [zero_memory_per_device(7.5e9, 64, stage) / 1e9 for stage in range(4)]
    assert [round(gb, 1) for gb in gigabytes] == [120.0, 31.4, 16.6, 1.9]


def test_zero_memory_formula_for_a_7b_model_on_8_gpus():
    assert zero_memory_per_device(7e9, 8, 0) == pytest.approx(16 * 7e9)
    assert zero_memory_per_device(7e9, 8, 1) == pytest.approx(4 * 7e9 + 12 * 7e9 / 8)
    assert zero_memory_per_device(7e9, 8, 2) == pytest.approx(2 * 7e9 + 14 * 7e9 / 8)
    assert zero_memory_per_device(7e9, 8, 3) == pytest.approx(16 * 7e9 / 8)
    # float32 Adam without a master copy: 4 + 4 + 8 bytes
    assert zero_memory_per_device(100, 2, 3, 4, 4, 8) == pytest.approx(800)


def test_zero_memory_rejects_nonsense():
    with pytest.raises(ValueError, match="stage"):
        zero_memory_per_device(1e9, 8, 4)
    with pytest.raises(ValueError, match="n_devices"):
        zero_memory_per_device(1e9, 0, 1)
    with pytest.raises(ValueError, match="n_params"):
        zero_memory_per_device(-1, 8, 1)


def test_ring_all_reduce_traffic_and_time():
    assert ring_all_reduce_bytes(1000, 1) == 0
    assert ring_all_reduce_bytes(1000, 2) == 1000
    assert ring_all_reduce_bytes(1000, 4) == 1500
    # 14 GB of bf16 gradients over 8 GPUs at 450 GB/s: 2 * 7/8 * 14e9 / 450e9 seconds
    assert ring_all_reduce_time(14e9, 8, 450e9) == pytest.approx(2 * 7 / 8 * 14e9 / 450e9)
    assert ring_all_reduce_time(0, 4, 1e9, latency=1e-5) == pytest.approx(6e-5)
    with pytest.raises(ValueError, match="bandwidth"):
        ring_all_reduce_time(1, 2, 0)


def test_fit_latency_bandwidth_recovers_known_parameters():
    sizes = np.logspace(2, 8, 13)
    rng = np.random.default_rng(0)
    times = (20e-6 + sizes / 2e9) * rng.uniform(0.97, 1.03, size=sizes.shape)
    alpha, beta = fit_latency_bandwidth(sizes, times)
    assert alpha == pytest.approx(20e-6, rel=0.1)
    assert 1 / beta == pytest.approx(2e9, rel=0.1)
    with pytest.raises(ValueError, match="positive"):
        fit_latency_bandwidth([1, 2], [0.0, 1.0])


@pytest.mark.parametrize("schedule", ["gpipe", "1f1b"])
@pytest.mark.parametrize(("stages", "micro"), [(1, 1), (2, 1), (2, 5), (4, 8), (8, 3), (8, 64)])
def test_simulated_bubble_equals_the_formula(schedule, stages, micro):
    ops = pipeline_schedule(stages, micro, schedule)
    assert len(ops) == 2 * stages * micro
    assert measured_bubble(ops) == pytest.approx(bubble_fraction(stages, micro))
    assert max(op.end for op in ops) == pytest.approx((micro + stages - 1) * 3.0)


def test_schedules_respect_dependencies_and_never_overlap_on_a_stage():
    for schedule in ("gpipe", "1f1b"):
        ops = pipeline_schedule(4, 6, schedule, forward_time=1.0, backward_time=1.5)
        end = {(op.kind, op.stage, op.microbatch): op.end for op in ops}
        for op in ops:
            if op.kind == "F" and op.stage > 0:
                assert op.start >= end[("F", op.stage - 1, op.microbatch)]
            if op.kind == "B":
                before = (
                    ("B", op.stage + 1, op.microbatch) if op.stage < 3 else ("F", 3, op.microbatch)
                )
                assert op.start >= end[before]
        for stage in range(4):
            mine = sorted((op.start, op.end) for op in ops if op.stage == stage)
            assert all(a[1] <= b[0] for a, b in itertools.pairwise(mine))


def test_1f1b_holds_at_most_p_microbatches_gpipe_holds_all():
    assert peak_in_flight(pipeline_schedule(4, 16, "gpipe"), 0) == 16
    assert peak_in_flight(pipeline_schedule(4, 16, "1f1b"), 0) == 4
    assert peak_in_flight(pipeline_schedule(4, 16, "1f1b"), 3) == 1
    assert peak_in_flight(pipeline_schedule(4, 16, "gpipe"), 3) == 16


def test_pipeline_schedule_rejects_bad_input():
    with pytest.raises(ValueError, match="schedule"):
        pipeline_schedule(2, 2, "interleaved")
    with pytest.raises(ValueError, match="n_microbatches"):
        pipeline_schedule(2, 0)


def test_torchrun_commands():
    assert torchrun_command("train.py", nproc_per_node=2) == (
        "torchrun --standalone --nproc-per-node=2 train.py"
    )
    multi = torchrun_command("train.py", 4, 8, "node001:29500", "job7", ["--lr", "3e-4"])
    assert multi.split() == [
        "torchrun", "--nnodes=4", "--nproc-per-node=8", "--rdzv-backend=c10d",
        "--rdzv-endpoint=node001:29500", "--rdzv-id=job7", "train.py", "--lr", "3e-4",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="host:port"):
        torchrun_command("train.py", 2, 8, "node001")


def test_slurm_script_asks_for_the_nodes_and_runs_one_torchrun_per_node():
    script = slurm_script("train.py", nodes=4, gpus_per_node=8, cpus_per_node=96, hours=48)
    assert script.startswith("#!/bin/bash\n")
    for line in ("#SBATCH --nodes=4", "#SBATCH --gpus-per-node=8", "#SBATCH --time=48:00:00",
                 "#SBATCH --cpus-per-task=96", "export OMP_NUM_THREADS=12"):  # fmt: skip
        assert line in script
    assert "#SBATCH --ntasks-per-node=1" in script
    assert "srun torchrun" in script
    assert '--rdzv-endpoint="$head_node:29500"' in script
    assert '--nnodes="$SLURM_NNODES"' in script
    with pytest.raises(ValueError, match="nodes"):
        slurm_script("train.py", nodes=0)


def test_zero_stages_are_named():
    assert set(parallelism.ZERO_STAGES) == {0, 1, 2, 3}
