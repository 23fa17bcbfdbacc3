"""Tests of llmzero.training.loop: devices, seeds, the training loop, evaluation and checkpoints."""

from __future__ import annotations

import pickle
from collections import namedtuple

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm import tqdm

from llmzero.core.runtime import get_device, seed_everything, to_device
from llmzero.training import loop
from llmzero.training.loop import History, evaluate, fit, load_checkpoint, save_checkpoint

# ----------------------------------------------------------------------------- helpers


def mse_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    inputs, targets = batch  # (batch, 4), (batch, 1)
    return nn.functional.mse_loss(model(inputs), targets)


def make_run(seed: int = 0, *, own_generator: bool = False):
    """A tiny regression problem: a model with dropout, AdamW, a schedule, shuffled loaders.

    The data are always the same; the initial weights, shuffling and dropout follow ``seed``.
    """
    data_rng = torch.Generator().manual_seed(2024)
    inputs = torch.randn(40, 4, generator=data_rng)  # (examples, features)
    noise = 0.1 * torch.randn(40, 1, generator=data_rng)
    targets = inputs @ torch.randn(4, 1, generator=data_rng) + noise  # (examples, 1)
    seed_everything(seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=7, gamma=0.5)
    # 40 examples in batches of 6: 7 batches a pass, the last one smaller.
    # own_generator: shuffle with the loader's own generator instead of the global one.
    generator = torch.Generator().manual_seed(seed) if own_generator else None
    train_loader = DataLoader(
        TensorDataset(inputs, targets), batch_size=6, shuffle=True, generator=generator
    )
    val_loader = DataLoader(TensorDataset(inputs[:20], targets[:20]), batch_size=8, shuffle=True)
    return model, optimizer, scheduler, train_loader, val_loader


def assert_same_parameters(first: nn.Module, second: nn.Module) -> None:
    for (name, a), (_, b) in zip(
        first.state_dict().items(), second.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), f"parameter {name} differs"


# ----------------------------------------------------------------------------- devices, seeds


def test_get_device_honours_prefer():
    assert get_device("cpu") == torch.device("cpu")
    assert get_device("meta") == torch.device("meta")


def test_get_device_prefers_cuda_when_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_device() == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert get_device() == torch.device("cpu")


def test_seed_everything_makes_randn_repeatable():
    seed_everything(123)
    first = torch.randn(5)
    seed_everything(123)
    assert torch.equal(first, torch.randn(5))
    seed_everything(124)
    assert not torch.equal(first, torch.randn(5))


# ----------------------------------------------------------------------------- small helpers


def test_to_device_moves_tensors_inside_nested_containers():
    Pair = namedtuple("Pair", "x y")
    batch = {"ids": torch.ones(2), "pair": Pair(torch.zeros(1), [torch.ones(3), "text"]), "n": 3}
    moved = to_device(batch, "meta")
    assert moved["ids"].device.type == "meta"
    assert isinstance(moved["pair"], Pair)
    assert moved["pair"].x.device.type == "meta"
    assert moved["pair"].y[0].device.type == "meta"
    assert moved["pair"].y[1] == "text" and moved["n"] == 3


def test_history_round_trips_through_a_dict():
    history = History(steps=[1, 2], train_loss=[0.5, 0.25], val_steps=[2], val_loss=[0.3])
    data = history.to_dict()
    assert data == {"steps": [1, 2], "train_loss": [0.5, 0.25], "val_steps": [2], "val_loss": [0.3]}
    assert History.from_dict(data) == history
    data["steps"].append(3)  # to_dict returns copies
    assert history.steps == [1, 2]


# ----------------------------------------------------------------------------- evaluate


@pytest.mark.parametrize("training", [True, False])
def test_evaluate_restores_the_models_mode(training):
    model, _, _, _, val_loader = make_run()
    model.train(training)
    evaluate(model, val_loader, mse_loss)
    assert model.training is training


def test_evaluate_is_the_mean_over_examples_without_dropout_or_gradients():
    model, _, _, _, _ = make_run()
    inputs, targets = torch.randn(10, 4), torch.randn(10, 1)
    loader = DataLoader(TensorDataset(inputs, targets), batch_size=4)  # batches of 4, 4, 2
    model.train()
    result = evaluate(model, loader, mse_loss)
    model.eval()
    with torch.no_grad():
        expected = nn.functional.mse_loss(model(inputs), targets).item()
    assert result == pytest.approx(expected, rel=1e-6)
    assert all(p.grad is None for p in model.parameters())


# ----------------------------------------------------------------------------- fit


def test_fit_records_one_loss_per_step_and_evaluates_each_pass_and_at_the_end():
    model, optimizer, _, train_loader, val_loader = make_run()
    history = fit(
        model, train_loader, optimizer, mse_loss, epochs=2, val_loader=val_loader, progress=False
    )
    assert history.steps == list(range(1, 15))  # 2 passes of 7 batches
    assert len(history.train_loss) == 14
    assert history.val_steps == [7, 14]
    assert history.val_loss[-1] < history.train_loss[0]  # it learned something


def test_fit_max_steps_stops_and_overrides_epochs():
    model, optimizer, _, train_loader, val_loader = make_run()
    history = fit(
        model,
        train_loader,
        optimizer,
        mse_loss,
        epochs=1,
        max_steps=10,
        val_loader=val_loader,
        eval_every=4,
        progress=False,
    )
    assert history.steps == list(range(1, 11))  # past the 7-batch pass, stopped at 10
    assert history.val_steps == [4, 8, 10]  # every 4 steps, and after the last one
    assert fit(model, train_loader, optimizer, mse_loss, max_steps=0, progress=False) == History()


def test_evaluation_frequency_does_not_change_the_training_run():
    model_a, optimizer_a, _, train_loader_a, _ = make_run()
    fit(model_a, train_loader_a, optimizer_a, mse_loss, max_steps=12, progress=False)
    model_b, optimizer_b, _, train_loader_b, val_loader_b = make_run()
    fit(
        model_b,
        train_loader_b,
        optimizer_b,
        mse_loss,
        max_steps=12,
        progress=False,
        val_loader=val_loader_b,
        eval_every=1,
    )  # a shuffling val_loader, every step
    assert_same_parameters(model_a, model_b)


def test_fit_stops_with_a_clear_error_when_the_loss_is_nan():
    model, optimizer, _, train_loader, _ = make_run()
    before = [p.detach().clone() for p in model.parameters()]

    def nan_loss(model, batch):
        return mse_loss(model, batch) * float("nan")

    with pytest.raises(FloatingPointError, match="lower learning rate"):
        fit(model, train_loader, optimizer, nan_loss, max_steps=3, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_fit_progress_bar_goes_to_stdout_not_stderr(capsys):
    model, optimizer, _, train_loader, _ = make_run()
    fit(model, train_loader, optimizer, mse_loss, max_steps=3, desc="tiny")
    captured = capsys.readouterr()
    assert "tiny" in captured.out and "3/3" in captured.out and "loss=" in captured.out
    assert captured.err == ""


def test_notebook_progress_line_keeps_only_the_final_bar_state():
    class FakeHandle:
        def __init__(self):
            self.shown = []

        def update(self, bundle, raw):
            self.shown.append(bundle["text/plain"])

    handle = FakeHandle()
    line = loop._DisplayLine(handle)
    bar = tqdm(range(5), desc="demo", file=line, mininterval=0, leave=True)
    for _ in bar:
        bar.set_postfix_str("loss=1.0", refresh=False)
    bar.close()
    assert len(handle.shown) > 1  # it moved while running ...
    assert "\n" not in handle.shown[-1] and "\r" not in handle.shown[-1]  # ... one line
    assert handle.shown[-1].startswith("demo: 100%") and "5/5" in handle.shown[-1]
    assert "█" in handle.shown[-1]  # Unicode blocks, not "#"


# ----------------------------------------------------------------------------- resuming


@pytest.mark.parametrize("own_generator", [False, True])
def test_resumed_run_equals_an_uninterrupted_run_exactly(tmp_path, own_generator):
    settings = dict(eval_every=5, grad_clip=1.0, progress=False)
    model, optimizer, scheduler, train_loader, val_loader = make_run(own_generator=own_generator)
    straight = fit(
        model,
        train_loader,
        optimizer,
        mse_loss,
        max_steps=20,
        scheduler=scheduler,
        val_loader=val_loader,
        **settings,
    )

    checkpoint = tmp_path / "run.pt"
    model_a, optimizer_a, scheduler_a, train_loader_a, val_loader_a = make_run(
        own_generator=own_generator
    )
    fit(
        model_a,
        train_loader_a,
        optimizer_a,
        mse_loss,
        max_steps=10,
        scheduler=scheduler_a,
        val_loader=val_loader_a,
        checkpoint_path=checkpoint,
        **settings,
    )  # stops mid-pass
    # A new "session": different seed and weights, which the checkpoint must overwrite.
    model_b, optimizer_b, scheduler_b, train_loader_b, val_loader_b = make_run(
        seed=99, own_generator=own_generator
    )
    resumed = fit(
        model_b,
        train_loader_b,
        optimizer_b,
        mse_loss,
        max_steps=20,
        scheduler=scheduler_b,
        val_loader=val_loader_b,
        checkpoint_path=checkpoint,
        resume=True,
        **settings,
    )

    assert_same_parameters(model, model_b)
    assert resumed.to_dict() == straight.to_dict()
    assert scheduler_b.state_dict() == scheduler.state_dict()


def test_run_that_crashed_resumes_from_its_last_checkpoint_exactly(tmp_path):
    model, optimizer, _, train_loader, val_loader = make_run()
    straight = fit(
        model, train_loader, optimizer, mse_loss, epochs=3, val_loader=val_loader, progress=False
    )

    calls = 0

    def crashing_loss(model, batch):
        nonlocal calls
        calls += model.training  # count training steps, not evaluation batches
        if calls == 13:
            raise KeyboardInterrupt  # as if the notebook's kernel were stopped
        return mse_loss(model, batch)

    checkpoint = tmp_path / "run.pt"
    model_a, optimizer_a, _, train_loader_a, val_loader_a = make_run()
    with pytest.raises(KeyboardInterrupt):
        fit(
            model_a,
            train_loader_a,
            optimizer_a,
            crashing_loss,
            epochs=3,
            val_loader=val_loader_a,
            checkpoint_path=checkpoint,
            checkpoint_every=5,
            progress=False,
        )
    assert load_checkpoint(checkpoint, model_a)["step"] == 10  # in the second pass

    model_b, optimizer_b, _, train_loader_b, val_loader_b = make_run(seed=99)
    resumed = fit(
        model_b,
        train_loader_b,
        optimizer_b,
        mse_loss,
        epochs=3,
        val_loader=val_loader_b,
        checkpoint_path=checkpoint,
        checkpoint_every=5,
        resume=True,
        progress=False,
    )
    assert_same_parameters(model, model_b)
    assert resumed.to_dict() == straight.to_dict()


def test_resume_without_a_checkpoint_starts_afresh(tmp_path):
    model, optimizer, _, train_loader, _ = make_run()
    history = fit(
        model,
        train_loader,
        optimizer,
        mse_loss,
        max_steps=4,
        progress=False,
        checkpoint_path=tmp_path / "missing.pt",
        resume=True,
    )
    assert history.steps == [1, 2, 3, 4]
    assert (tmp_path / "missing.pt").is_file()


# ----------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_restores_model_optimizer_scheduler_and_extra(tmp_path):
    model, optimizer, scheduler, train_loader, _ = make_run()
    fit(model, train_loader, optimizer, mse_loss, max_steps=3, scheduler=scheduler, progress=False)
    save_checkpoint(
        tmp_path / "c.pt", model, optimizer, scheduler, step=3, note="hi", losses=[1.0, 0.5]
    )
    fresh_model, fresh_optimizer, fresh_scheduler, _, _ = make_run(seed=1)
    extra = load_checkpoint(tmp_path / "c.pt", fresh_model, fresh_optimizer, fresh_scheduler)
    assert extra == {"step": 3, "note": "hi", "losses": [1.0, 0.5]}
    assert_same_parameters(model, fresh_model)
    assert fresh_scheduler.state_dict() == scheduler.state_dict()
    assert fresh_optimizer.state_dict()["state"][0]["step"] == 3


def _mark_called() -> None:
    raise AssertionError("unpickling ran code from the checkpoint")


class _Payload:
    def __reduce__(self):
        return (_mark_called, ())


def test_load_checkpoint_refuses_arbitrary_pickled_objects(tmp_path):
    model, _, _, _, _ = make_run()
    path = tmp_path / "evil.pt"
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": None,
            "scheduler": None,
            "step": 0,
            "extra": {"payload": _Payload()},
        },
        path,
    )
    with pytest.raises(pickle.UnpicklingError, match=r"[Ww]eights only"):
        load_checkpoint(path, model)


def test_save_checkpoint_is_atomic_and_leaves_no_temporary_files(tmp_path):
    model, optimizer, _, _, _ = make_run()
    path = tmp_path / "sub" / "model.pt"
    save_checkpoint(path, model, optimizer, step=1)
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]
    before = path.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - torch raises different errors for a lambda
        save_checkpoint(path, model, optimizer, step=2, broken=lambda: None)
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]
    assert path.read_bytes() == before  # the old checkpoint is intact
    assert load_checkpoint(path, model)["step"] == 1


def test_load_checkpoint_without_optimizer_state_says_so(tmp_path):
    model, optimizer, _, _, _ = make_run()
    save_checkpoint(tmp_path / "m.pt", model)
    with pytest.raises(ValueError, match="no optimizer state"):
        load_checkpoint(tmp_path / "m.pt", model, optimizer)


def test_resume_needs_a_checkpoint_path():
    model, optimizer, _, train_loader, _ = make_run()
    with pytest.raises(ValueError, match="checkpoint_path"):
        fit(model, train_loader, optimizer, mse_loss, resume=True, progress=False)


def test_fit_steps_the_scheduler_once_per_optimizer_step():
    model, optimizer, scheduler, train_loader, _ = make_run()  # StepLR: halve every 7 steps
    fit(model, train_loader, optimizer, mse_loss, max_steps=10, scheduler=scheduler, progress=False)
    assert scheduler.last_epoch == 10
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-2 / 2)


def test_fit_grad_clip_bounds_the_gradient_norm():
    model, _, _, train_loader, _ = make_run()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)  # update = -gradient
    before = torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone()
    fit(model, train_loader, optimizer, mse_loss, max_steps=1, grad_clip=1e-3, progress=False)
    after = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
    assert (after - before).norm().item() == pytest.approx(1e-3, rel=1e-3)
