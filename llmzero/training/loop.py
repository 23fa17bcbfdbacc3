"""A small, readable training loop used from Part I on.

Every chapter that trains something needs the same few pieces: pick a device, seed the
random number generators, loop over batches (forward, backward, optimizer step), watch
the loss, check it on held-out data now and then, and save the work so a long run can
stop and pick up again. They live here, written out plainly, so that a chapter can spend
its words on the model instead of the loop:

- Where to run and how to make a re-run give the same numbers live one layer down, in
  :mod:`llmzero.core.runtime`, because models and data need them too.
- :func:`fit`: the loop. It calls ``loss_fn(model, batch)`` to get a scalar loss, so it
  works for any batch shape: ``(x, y)`` pairs, dictionaries of token ids, anything.
  It records a :class:`History` (the training loss at every step, the validation loss
  at every evaluation) that :func:`llmzero.core.plotting.plot_history` draws.
- :func:`evaluate`: the mean loss on a data set, without touching gradients.
- :func:`save_checkpoint` and :func:`load_checkpoint`: safe checkpoints. Saving is
  atomic (a crash mid-save never leaves a half-written file), loading never runs code
  hidden in the file (``weights_only=True``), and a resumed :func:`fit` continues
  *exactly* where it stopped: same weights, same optimizer state, same shuffling, same
  dropout masks, so the result equals an uninterrupted run's bit for bit (on the same
  machine).
"""

from __future__ import annotations

import math
import os
import random
import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from llmzero.core.runtime import to_device

__all__ = [
    "History",
    "evaluate",
    "fit",
    "load_checkpoint",
    "save_checkpoint",
]


# --------------------------------------------------------------------------------------
# What a run records
# --------------------------------------------------------------------------------------


@dataclass
class History:
    """What :func:`fit` records: the training loss at every step, the validation loss at
    every evaluation. Steps count optimizer updates, starting at 1."""

    #: The step number of each entry in ``train_loss`` (1, 2, 3, ...).
    steps: list[int] = field(default_factory=list)
    #: The training loss of the batch used at each step (before that step's update).
    train_loss: list[float] = field(default_factory=list)
    #: The step after which each validation loss was measured.
    val_steps: list[int] = field(default_factory=list)
    #: The mean validation loss (see :func:`evaluate`) at each of ``val_steps``.
    val_loss: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The four lists as a plain dictionary (copies), e.g. for a checkpoint or JSON."""
        return {
            "steps": list(self.steps),
            "train_loss": list(self.train_loss),
            "val_steps": list(self.val_steps),
            "val_loss": list(self.val_loss),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, list]) -> History:
        """Rebuild a :class:`History` from :meth:`to_dict`'s output."""
        return cls(
            steps=[int(s) for s in data["steps"]],
            train_loss=[float(x) for x in data["train_loss"]],
            val_steps=[int(s) for s in data["val_steps"]],
            val_loss=[float(x) for x in data["val_loss"]],
        )


# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------


def _model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a model without any)."""
    for parameter in model.parameters():
        return parameter.device
    return torch.device("cpu")


def _batch_size(batch: Any) -> int | None:
    """The first dimension of the first tensor found in ``batch`` (None if there is none)."""
    if isinstance(batch, torch.Tensor):
        return batch.shape[0] if batch.dim() > 0 else None
    items = batch.values() if isinstance(batch, Mapping) else batch
    if isinstance(items, (tuple, list)) or isinstance(batch, Mapping):
        for item in items:
            size = _batch_size(item)
            if size is not None:
                return size
    return None


# --------------------------------------------------------------------------------------
# Random number generator state (what makes a resumed run equal an uninterrupted one)
# --------------------------------------------------------------------------------------


def _loader_generators(loader: Any) -> list[torch.Generator]:
    """The private generators a DataLoader may shuffle with (``generator=`` argument)."""
    found: list[torch.Generator] = []
    for owner in (loader, getattr(loader, "sampler", None)):
        generator = getattr(owner, "generator", None)
        if isinstance(generator, torch.Generator) and all(generator is not g for g in found):
            found.append(generator)
    return found


def _rng_state(loader: Any = None) -> dict:
    """Every random number generator's state, in a form ``weights_only`` loading accepts.

    A DataLoader with ``shuffle=True`` draws its order from PyTorch's global generator
    (or from its own ``generator=``) when an epoch starts; dropout draws from it at every
    step; Python's and NumPy's generators are saved too in case a ``loss_fn`` uses them.
    """
    version, mt_state, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    return {
        "python": (version, list(mt_state), gauss),
        "numpy": (
            np_name,
            torch.from_numpy(np_keys.astype(np.int64)),
            np_pos,
            np_has_gauss,
            np_gauss,
        ),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "mps": torch.mps.get_rng_state() if torch.backends.mps.is_available() else None,
        "loader": [g.get_state() for g in _loader_generators(loader)],
    }


def _set_rng_state(state: dict, loader: Any = None) -> None:
    """Restore what :func:`_rng_state` saved."""
    version, mt_state, gauss = state["python"]
    random.setstate((version, tuple(mt_state), gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state(
        (np_name, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss)
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if state.get("mps") is not None and torch.backends.mps.is_available():
        torch.mps.set_rng_state(state["mps"])
    for generator, saved in zip(_loader_generators(loader), state["loader"], strict=False):
        generator.set_state(saved)


# --------------------------------------------------------------------------------------
# The progress bar
# --------------------------------------------------------------------------------------

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class _DisplayLine:
    """A file-like object that shows the last line tqdm wrote in one notebook output.

    Why not just ``tqdm(file=sys.stdout)``? A text bar redraws itself by writing a
    carriage return and the new state. A live notebook honours the ``\\r`` and shows one
    line, but the executed notebook the site is built from keeps every flush as its own
    stream chunk, and the rendered page then shows every intermediate state of the bar,
    one per line (we checked: 40 iterations gave 12 lines). A huge ``mininterval`` still
    leaves the 0 % line behind, and hiding the bar would lose the live feedback.

    Instead, inside a Jupyter kernel, the bar's text goes to a display output that is
    updated in place (``update_display_data``, the mechanism behind
    ``IPython.display.DisplayHandle``): the live notebook (Jupyter, VS Code, Colab) shows
    one line that moves, and the executed notebook stores only the final state, so the
    site shows one clean line with the final loss. Nothing goes to stderr, which the
    book's build rejects. Outside a kernel (a script, a terminal, pytest) :func:`fit`
    writes an ordinary tqdm bar to ``sys.stdout``.
    """

    encoding = "utf-8"  # tells tqdm it may draw the bar with Unicode blocks

    def __init__(self, handle: Any = None) -> None:
        if handle is None:
            from IPython.display import display

            handle = display({"text/plain": ""}, raw=True, display_id=True)
        self.handle = handle
        self.text = ""

    def write(self, text: str) -> int:
        # tqdm redraws with "\r<new state>": keep only what follows the last carriage return.
        last = (self.text + text).rsplit("\r", 1)[-1]
        self.text = _ANSI_ESCAPE.sub("", last).strip("\n").rstrip()
        return len(text)

    def flush(self) -> None:
        self.handle.update({"text/plain": self.text}, raw=True)


def _in_notebook_kernel() -> bool:
    """True inside a Jupyter kernel (a notebook, VS Code, Colab, or the book's build)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and hasattr(shell, "kernel")


# Short enough (about 70 characters) to fit the site's output column without scrolling:
# "training: 300/300 |██████████| 00:04<00:00, loss=0.0371, val=0.0354".
_BAR_FORMAT = "{desc}: {n_fmt}/{total_fmt} |{bar:10}| {elapsed}<{remaining}{postfix}"


def _progress_bar(total: int | None, initial: int, desc: str, enabled: bool) -> tqdm:
    """A tqdm bar on stdout, or on an in-place notebook output inside a kernel."""
    in_kernel = enabled and _in_notebook_kernel()
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        bar_format=_BAR_FORMAT,
        leave=True,
        disable=not enabled,
        file=_DisplayLine() if in_kernel else sys.stdout,
        position=0 if in_kernel else None,  # the bar owns its output, even inside another bar
    )


# --------------------------------------------------------------------------------------
# Evaluation and the training loop
# --------------------------------------------------------------------------------------

LossFn = Callable[[torch.nn.Module, Any], torch.Tensor]


def evaluate(
    model: torch.nn.Module,
    loader: Iterable,
    loss_fn: LossFn,
    device: torch.device | str | None = None,
) -> float:
    """The mean of ``loss_fn(model, batch)`` over ``loader``, in eval mode, without gradients.

    Each batch's loss is weighted by its batch size (the first dimension of the first
    tensor in the batch), so a smaller last batch counts less and the result is the mean
    over examples, not over batches. Dropout is off during evaluation (``model.eval()``);
    the model is put back in the mode it was in. ``device=None`` uses the model's device.
    """
    device = _model_device(model) if device is None else torch.device(device)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            for batch in loader:
                batch = to_device(batch, device)
                size = _batch_size(batch) or 1
                total += float(loss_fn(model, batch)) * size
                count += size
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("evaluate() got an empty loader: there is nothing to average.")
    return total / count


def _train_step(
    model: torch.nn.Module,
    batch: Any,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    grad_clip: float | None,
    allow_nonfinite: bool,
) -> float:
    """One optimizer update on one batch; returns the batch's loss (before the update)."""
    loss = loss_fn(model, batch)  # a scalar tensor
    loss_value = loss.item()
    if not math.isfinite(loss_value) and not allow_nonfinite:
        raise FloatingPointError(
            f"The training loss became {loss_value}; the model keeps its weights from before "
            "this batch. Try a lower learning rate or grad_clip=1.0 (or pass "
            "allow_nonfinite=True)."
        )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return loss_value


def _replay_pass(train_loader: Iterable, saved: dict) -> Iterator:
    """Re-create the pass over ``train_loader`` that a checkpoint interrupted, where it stopped.

    Puts the generators back to their state when that pass began (so the loader shuffles
    the same way), skips the batches already used, then puts them back to their state at
    the checkpoint (so dropout and the next pass continue the same way).
    """
    _set_rng_state(saved["epoch_start_rng"], train_loader)
    batches = iter(train_loader)
    for _ in range(saved["batches_into_epoch"]):
        next(batches, None)
    _set_rng_state(saved["rng"], train_loader)
    return batches


def fit(
    model: torch.nn.Module,
    train_loader: Iterable,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    *,
    epochs: int = 1,
    max_steps: int | None = None,
    val_loader: Iterable | None = None,
    eval_every: int | None = None,
    device: torch.device | str | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    grad_clip: float | None = None,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    progress: bool = True,
    desc: str = "training",
    allow_nonfinite: bool = False,
) -> History:
    """Train ``model`` with ``optimizer`` on ``train_loader`` and return its :class:`History`.

    One *step* is one optimizer update: move the batch to ``device``, compute
    ``loss = loss_fn(model, batch)`` (a scalar tensor), backpropagate, optionally clip the
    gradient norm to ``grad_clip``, update, then advance ``scheduler`` (once per step, the
    way warm-up and cosine schedules for language models are written).

    How long: ``epochs`` passes over ``train_loader``; if ``max_steps`` is given it wins
    and training runs exactly ``max_steps`` steps, starting a new pass whenever one ends.

    Validation: with ``val_loader``, :func:`evaluate` runs every ``eval_every`` steps
    (default: at the end of each pass) and always after the last step. Evaluation leaves
    the random number generators as it found them, so how often you evaluate never
    changes the training run itself.

    Checkpoints: with ``checkpoint_path``, the model, optimizer, scheduler, step count,
    history and every random number generator's state are saved every
    ``checkpoint_every`` steps (if given) and after the last step. ``resume=True``
    continues from that file if it exists (and starts afresh if it does not): batches
    already used in the current pass are skipped in the same shuffled order, and the
    weights and history come out exactly as an uninterrupted run's would. Resuming a run
    that already reached its last step just loads it and returns its history.

    ``device=None`` trains on the device the model is on; otherwise the model is moved
    there. The progress bar (``progress=False`` hides it) shows the mean training loss
    of the last 50 steps and the latest validation loss. A loss that becomes ``nan`` or
    infinite stops training with an error (usually: lower the learning rate or set
    ``grad_clip``) unless ``allow_nonfinite=True``.
    """
    if max_steps is not None and max_steps < 0:
        raise ValueError(f"max_steps must be >= 0, got {max_steps}.")
    for name, value in (("eval_every", eval_every), ("checkpoint_every", checkpoint_every)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be a positive number of steps, got {value}.")
    if resume and checkpoint_path is None:
        raise ValueError("resume=True needs the checkpoint_path to resume from.")
    if device is None:
        device = _model_device(model)
    else:
        device = torch.device(device)
        model.to(device)
    total_steps = max_steps
    if total_steps is None:
        try:
            total_steps = epochs * len(train_loader)  # type: ignore[arg-type]
        except TypeError as error:
            raise ValueError(
                "train_loader has no len(); pass max_steps to say how long to train."
            ) from error

    history = History()
    step, epoch, batches_into_epoch = 0, 0, 0
    resume_state: dict | None = None
    if resume and checkpoint_path is not None and Path(checkpoint_path).is_file():
        saved = load_checkpoint(checkpoint_path, model, optimizer, scheduler)
        step, epoch = saved["step"], saved["epoch"]
        batches_into_epoch = saved["batches_into_epoch"]
        history = History.from_dict(saved["history"])
        resume_state = saved

    def save(path: str | Path, epoch_start_rng: dict) -> None:
        save_checkpoint(
            path,
            model,
            optimizer,
            scheduler,
            step=step,
            epoch=epoch,
            batches_into_epoch=batches_into_epoch,
            history=history.to_dict(),
            rng=_rng_state(train_loader),
            epoch_start_rng=epoch_start_rng,
        )

    def run_evaluation(loader: Iterable) -> None:
        rng = _rng_state(loader)  # a shuffling val_loader must not disturb training
        history.val_loss.append(evaluate(model, loader, loss_fn, device))
        history.val_steps.append(step)
        _set_rng_state(rng, loader)

    bar = _progress_bar(total_steps, step, desc, progress)
    model.train()
    try:
        while step < total_steps:
            if resume_state is not None:  # continue the pass the checkpoint interrupted
                epoch_start_rng = resume_state["epoch_start_rng"]
                batches = _replay_pass(train_loader, resume_state)
                resume_state = None
            else:
                epoch_start_rng = _rng_state(train_loader)
                batches = iter(train_loader)
                batches_into_epoch = 0
            for batch in batches:
                batch = to_device(batch, device)
                loss_value = _train_step(
                    model, batch, optimizer, loss_fn, scheduler, grad_clip, allow_nonfinite
                )
                step += 1
                batches_into_epoch += 1
                history.steps.append(step)
                history.train_loss.append(loss_value)

                last = step >= total_steps
                if val_loader is not None and (
                    last or (eval_every is not None and step % eval_every == 0)
                ):
                    run_evaluation(val_loader)
                if checkpoint_path is not None and (
                    last or (checkpoint_every is not None and step % checkpoint_every == 0)
                ):
                    save(checkpoint_path, epoch_start_rng)
                recent = history.train_loss[-50:]
                postfix = f"loss={sum(recent) / len(recent):.4g}"
                if history.val_loss:
                    postfix += f", val={history.val_loss[-1]:.4g}"
                bar.set_postfix_str(postfix, refresh=False)
                bar.update(1)
                if last:
                    break
            else:  # the pass ended before the last step
                if batches_into_epoch == 0:
                    raise ValueError("train_loader produced no batches.")
                epoch += 1
                if val_loader is not None and eval_every is None:
                    run_evaluation(val_loader)
    finally:
        bar.close()
    return history


# --------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    step: int = 0,
    **extra: Any,
) -> None:
    """Save the model's (and optimizer's, scheduler's) state, ``step`` and ``extra`` to ``path``.

    The file is written to a temporary file in the same folder and then renamed over
    ``path`` with ``os.replace``, which is atomic: if the process dies mid-save, the
    previous checkpoint is still there, whole. Keep ``extra`` to tensors, numbers,
    strings, lists, tuples and dicts, the types :func:`load_checkpoint` accepts.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "step": step,
        "extra": extra,
    }
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(checkpoint, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    map_location: str | torch.device = "cpu",
) -> dict:
    """Load a :func:`save_checkpoint` file into ``model`` (and ``optimizer``, ``scheduler``).

    Returns the ``extra`` dictionary it was saved with, plus ``"step"``. Always loads with
    ``torch.load(..., weights_only=True)``: a checkpoint is a pickle, and unpickling an
    untrusted file can run arbitrary code; ``weights_only`` accepts only tensors and
    plain Python values and refuses anything else with an ``UnpicklingError``.
    """
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    model.load_state_dict(checkpoint["model"])
    for name, target in (("optimizer", optimizer), ("scheduler", scheduler)):
        if target is None:
            continue
        if checkpoint[name] is None:
            raise ValueError(f"{path} holds no {name} state to load.")
        target.load_state_dict(checkpoint[name])
    return {**checkpoint["extra"], "step": checkpoint["step"]}
