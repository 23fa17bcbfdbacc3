"""Tests of llmzero.training.distributed on real processes: a gloo group of three CPU
workers (three, so that the ring really is a ring), started once for the module."""

from __future__ import annotations

import os
import socket

import pytest
import torch
from torch import nn

from llmzero.models.gpt import GPT, GPTConfig
from llmzero.training import distributed
from llmzero.training.distributed import LocalCluster

WORLD = 3
CONFIG = GPTConfig(vocab_size=20, block_size=8, n_layer=2, n_head=2, n_embd=12)
STEPS, GLOBAL_BATCH, LR = 4, 6, 3e-3


@pytest.fixture(scope="module")
def _clusters():
    """Holds the module's cluster; the last test kills it on purpose, so it is recreated
    if a test that needs it runs afterwards (e.g. in another order under pytest-xdist)."""
    held: list[LocalCluster] = []
    yield held
    for workers in held:
        workers.close()


@pytest.fixture
def cluster(_clusters):
    if not _clusters or not _clusters[-1].alive:
        _clusters.append(LocalCluster(world_size=WORLD, timeout_s=120))
    return _clusters[-1]


@pytest.fixture(scope="module")
def training():
    """The batches, the starting weights and one-process training on the whole batches."""
    generator = torch.Generator().manual_seed(0)
    batches = torch.randint(0, CONFIG.vocab_size, (STEPS, GLOBAL_BATCH, 9), generator=generator)
    torch.manual_seed(0)
    model = GPT(CONFIG)
    initial = {name: t.clone() for name, t in model.state_dict().items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.1)
    first_grads = None
    for step in range(STEPS):
        _, loss = model(batches[step, :, :-1], batches[step, :, 1:])
        loss.backward()
        if step == 0:
            first_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        optimizer.step()
        optimizer.zero_grad()
    final = {n: p.detach().clone() for n, p in model.named_parameters()}
    return batches, initial, first_grads, final


def without_key_biases(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The attention key biases have a zero true gradient, so Adam turns their rounding noise
    into steps of up to lr * noise / eps; they are compared separately."""
    width = CONFIG.n_embd
    return {
        name: torch.cat([t[:width], t[2 * width :]]) if name.endswith("c_attn.bias") else t
        for name, t in state.items()
    }


# ----------------------------------------------------------------------------- the cluster


def test_every_rank_joins_one_group_with_one_thread(cluster):
    rows = cluster.run(distributed.whoami)
    assert [row["rank"] for row in rows] == list(range(WORLD))
    assert {row["world size"] for row in rows} == {WORLD}
    assert {row["torch threads"] for row in rows} == {1}
    assert {row["OMP_NUM_THREADS"] for row in rows} == {"1"}
    assert len({row["pid"] for row in rows}) == WORLD


def test_collectives_demo_shows_each_collective(cluster):
    results = cluster.run(distributed.collectives_demo)
    for rank, result in enumerate(results):
        assert result["start"] == [10.0 * rank + 1, 10.0 * rank + 2]
        assert result["broadcast from 0"] == [1.0, 2.0]
        assert result["all_reduce (sum)"] == [sum(10.0 * r + 1 for r in range(WORLD)),
                                              sum(10.0 * r + 2 for r in range(WORLD))]  # fmt: skip
        assert result["all_gather"] == [
            v for r in range(WORLD) for v in (10.0 * r + 1, 10.0 * r + 2)
        ]
        assert result["reduce_scatter (sum)"] == [sum(100.0 * r + rank for r in range(WORLD))]


def test_ring_all_reduce_equals_dist_all_reduce_and_sends_2_p_minus_1_over_p(cluster):
    sizes = [1, 2, 5, 1000, 30_001]
    per_rank = cluster.run(distributed.check_ring_all_reduce, sizes, 7)
    for i, size in enumerate(sizes):
        inputs = [
            torch.randn(size, generator=torch.Generator().manual_seed(7 + r)) for r in range(WORLD)
        ]
        exact = torch.stack(inputs).double().sum(0)
        for rank in range(WORLD):
            row = per_rank[rank][i]
            # Three ranks add in different orders: equal to float32 rounding, not bit for bit.
            assert row["max |ring - dist.all_reduce|"] <= 1e-5
            torch.testing.assert_close(row["ring result"].double(), exact, rtol=1e-6, atol=1e-6)
        if size >= WORLD:
            expected_bytes = 2 * (WORLD - 1) / WORLD * 4 * size
            assert abs(per_rank[0][i]["bytes sent"] - expected_bytes) <= 2 * (WORLD - 1) * 4


def test_data_parallel_by_hand_and_with_ddp_equal_one_process(cluster, training):
    batches, initial, first_grads, final = training
    for mode in ("ring", "ddp"):
        per_rank = cluster.run(
            distributed.train_data_parallel, CONFIG, initial, batches, mode, lr=LR
        )
        ours = per_rank[0]
        for name, grad in first_grads.items():
            torch.testing.assert_close(ours["first_grads"][name], grad)
        expected = without_key_biases(final)
        for name, weight in without_key_biases(ours["final_state"]).items():
            torch.testing.assert_close(weight, expected[name])
        for name, weight in ours["final_state"].items():  # key biases included
            torch.testing.assert_close(weight, final[name], rtol=0, atol=1e-4)
        for other in per_rank[1:]:  # the replicas stay identical, bit for bit
            for name, weight in other["final_state"].items():
                assert torch.equal(weight, ours["final_state"][name])


def test_data_parallel_is_exact_up_to_float64_rounding(cluster, training):
    batches, initial, _, _ = training
    torch.manual_seed(0)
    model = GPT(CONFIG).double()
    model.load_state_dict(initial)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.1)
    for step in range(STEPS):
        _, loss = model(batches[step, :, :-1], batches[step, :, 1:])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    ours = cluster.run(
        distributed.train_data_parallel,
        CONFIG,
        initial,
        batches,
        "ring",
        lr=LR,
        dtype=torch.float64,
    )[0]
    for name, weight in model.named_parameters():
        assert (ours["final_state"][name] - weight).abs().max() < 1e-12


def test_sharded_adamw_equals_adamw_and_shards_its_state(cluster, training):
    batches, initial, _, final = training
    per_rank = cluster.run(distributed.train_data_parallel, CONFIG, initial, batches, "zero", lr=LR)
    expected = without_key_biases(final)
    for name, weight in without_key_biases(per_rank[0]["final_state"]).items():
        torch.testing.assert_close(weight, expected[name])
    n_params = sum(p.numel() for p in GPT(CONFIG).parameters())
    shard = -(-n_params // WORLD)  # ceil
    for result in per_rank:
        assert result["bytes"]["optimizer state"] == 2 * 4 * shard  # Adam's m and v, float32
        assert result["bytes"]["parameters"] == 4 * n_params  # ZeRO-1 keeps full weights


def test_fsdp_run_equals_one_process_and_holds_a_shard(cluster, training):
    batches, initial, _, final = training
    per_rank = cluster.run(distributed.train_data_parallel, CONFIG, initial, batches, "fsdp", lr=LR)
    expected = without_key_biases(final)
    for name, weight in without_key_biases(per_rank[0]["final_state"]).items():
        torch.testing.assert_close(weight, expected[name])
    n_params = sum(p.numel() for p in GPT(CONFIG).parameters())
    held = sum(result["bytes"]["parameters"] for result in per_rank)
    assert held >= 4 * n_params  # together the ranks hold every parameter ...
    assert max(result["bytes"]["parameters"] for result in per_rank) < 4 * n_params / WORLD * 1.5


def test_tensor_parallel_mlp_equals_the_unsplit_layers(cluster):
    torch.manual_seed(0)
    width = 6  # hidden width 24, divisible by 3 ranks
    fc, proj = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)
    x = torch.randn(2, 5, width, requires_grad=True)
    full = proj(nn.functional.gelu(fc(x), approximate="tanh"))
    grad_output = torch.randn_like(full)
    full.backward(grad_output)
    per_rank = cluster.run(distributed.tensor_parallel_mlp, fc, proj, x.detach(), grad_output)
    for result in per_rank:
        torch.testing.assert_close(result["output"], full.detach())
        torch.testing.assert_close(result["input grad"], x.grad)
    torch.testing.assert_close(
        torch.cat([r["fc weight shard"] for r in per_rank]), fc.weight.detach()
    )
    torch.testing.assert_close(torch.cat([r["fc weight grad"] for r in per_rank]), fc.weight.grad)
    torch.testing.assert_close(
        torch.cat([r["proj weight grad"] for r in per_rank], dim=1), proj.weight.grad
    )


def test_all_reduce_timing_is_positive_and_grows_with_size(cluster):
    seconds = cluster.run(distributed.time_all_reduce, [16, 4_000_000], 5)  # 64 B, 16 MB
    assert seconds[0] == seconds[1] == seconds[2]  # every rank reports the slowest rank's time
    assert all(t > 0 for t in seconds[0])
    assert seconds[0][1] > seconds[0][0]


def test_jobs_defined_outside_a_module_are_refused_clearly(cluster):
    def local_job():
        return 1

    with pytest.raises(TypeError, match="not importable"):
        cluster.run(local_job)
    with pytest.raises(TypeError, match="not importable"):
        cluster.run(lambda: 1)
    assert cluster.alive  # refusing a job does not harm the cluster


# ----------------------------------------------------------------------------- failures


def test_starting_workers_leaves_the_parents_environment_alone(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    with distributed._thread_limits(1):
        assert os.environ["OMP_NUM_THREADS"] == os.environ["MKL_NUM_THREADS"] == "1"
    assert os.environ["OMP_NUM_THREADS"] == "7"
    assert "MKL_NUM_THREADS" not in os.environ


def test_bad_arguments_are_rejected_before_starting_anything():
    with pytest.raises(ValueError, match="world_size"):
        LocalCluster(world_size=0)
    with pytest.raises(ValueError, match="backend"):
        LocalCluster(world_size=1, backend="mpi")
    with pytest.raises(ValueError, match="threads"):
        LocalCluster(world_size=1, threads=0)
    if torch.cuda.device_count() < 64:
        with pytest.raises(ValueError, match="one GPU per process"):
            LocalCluster(world_size=64, backend="nccl")


def test_a_worker_that_cannot_join_gives_a_clear_error(monkeypatch):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    monkeypatch.setattr(distributed, "find_free_port", lambda host="127.0.0.1": port)
    try:
        with pytest.raises(RuntimeError, match="joining the process group") as error:
            LocalCluster(world_size=1, timeout_s=60)
        assert "address already in use" in str(error.value)
    finally:
        blocker.close()


def test_find_free_port_returns_a_port_that_can_be_bound():
    port = distributed.find_free_port()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))


def test_a_failing_job_shuts_the_cluster_down_with_its_traceback(cluster):
    # Last in the module: it kills the shared cluster.
    with pytest.raises(RuntimeError, match="ValueError: mode must be") as error:
        cluster.run(distributed.train_data_parallel, CONFIG, {}, torch.zeros(1, 3, 9), "bogus")
    assert "raised on rank 0" in str(error.value)
    assert not cluster.alive
    with pytest.raises(RuntimeError, match="closed"):
        cluster.run(distributed.whoami)
