"""Training speed of ``llmzero.models.gpt.GPT`` against nanoGPT's model, on this CPU.

A benchmark, not a test: it prints numbers and asserts nothing about them (machines
differ, and a shared machine's timings wander). Run it from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/gpt_vs_nanogpt.py            # the defaults below
    python benchmarks/gpt_vs_nanogpt.py --threads 2 --rounds 31       # more threads, rounds

The setting is nanoGPT's CPU recipe for character-level Shakespeare (its README:
``python train.py config/train_shakespeare_char.py --device=cpu --compile=False
--block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --dropout=0.0``):
4 layers, 4 heads, width 128, a 64-token context, 12 sequences per batch, a 65-character
vocabulary, no dropout, float32, no ``torch.compile``, AdamW with weight decay 0.1 on the
2-D weights only, betas (0.9, 0.99), gradient clipping at norm 1.

nanoGPT's model (Karpathy, https://github.com/karpathy/nanoGPT, ``model.py``) is
re-implemented below from its published description rather than copied: GPT-2's layout
with learned positions, pre-LayerNorm blocks, the **exact** (erf) GELU, a tied LM head,
causal attention through ``torch.nn.functional.scaled_dot_product_attention``, and, in
that recipe, no bias in any Linear or LayerNorm (``train.py`` sets ``bias = False``).

The models timed, all on the same random batches with the same number of threads:

- ``llmzero``: our GPT with the same layout (``bias=False, gelu_approximate="none"``), so
  the two compute the same function and only the implementations differ;
- ``nanoGPT``: the re-implementation below;
- ``llmzero-gpt2``: our GPT with its defaults, GPT-2's layout (biases, tanh GELU): a
  little more arithmetic, and PyTorch's tanh is slow on some CPUs;
- ``llmzero+fused``: ``llmzero`` with the optimizer of the pretraining chapter,
  ``llmzero.training.pretrain.configure_optimizer`` (the same AdamW groups and settings,
  PyTorch's fused kernel), against nanoGPT's default AdamW, which is what nanoGPT's
  ``configure_optimizers`` picks on a CPU (it fuses only on CUDA).

The first three share the optimizer (``--optimizer``, default: PyTorch's default AdamW).
One *round* times ``--steps`` optimizer steps of each model in turn, rotating the order
between rounds, so that a burst of load from another process hits all of them alike. The
report gives each model's median tokens per second and the median (min-max) over rounds
of its ratio to nanoGPT's, for wall-clock time and for this process's CPU time.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone, uninstalled

from llmzero.models.gpt import GPT, GPTConfig
from llmzero.training.pretrain import configure_optimizer

# --------------------------------------------------------------------------------------
# nanoGPT's model, re-implemented from its description
# --------------------------------------------------------------------------------------


class NanoLayerNorm(nn.Module):
    """LayerNorm with an optional bias (PyTorch's LayerNorm had no ``bias=False`` then)."""

    def __init__(self, width: int, bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.bias = nn.Parameter(torch.zeros(width)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class NanoAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int, dropout: float, bias: bool) -> None:
        super().__init__()
        self.n_head, self.n_embd, self.dropout = n_head, n_embd, dropout
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, channels = x.size()  # (B, T, C)
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        shape = (batch, seq, self.n_head, channels // self.n_head)
        q = q.view(shape).transpose(1, 2)  # (B, H, T, D)
        k = k.view(shape).transpose(1, 2)
        v = v.view(shape).transpose(1, 2)
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
        )  # (B, H, T, D)
        y = y.transpose(1, 2).contiguous().view(batch, seq, channels)  # (B, T, C)
        return self.resid_dropout(self.c_proj(y))


class NanoMLP(nn.Module):
    def __init__(self, n_embd: int, dropout: float, bias: bool) -> None:
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.gelu = nn.GELU()  # the exact GELU
        self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class NanoBlock(nn.Module):
    def __init__(self, n_embd: int, n_head: int, dropout: float, bias: bool) -> None:
        super().__init__()
        self.ln_1 = NanoLayerNorm(n_embd, bias)
        self.attn = NanoAttention(n_embd, n_head, dropout, bias)
        self.ln_2 = NanoLayerNorm(n_embd, bias)
        self.mlp = NanoMLP(n_embd, dropout, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class NanoGPT(nn.Module):
    def __init__(self, config: GPTConfig, bias: bool) -> None:
        super().__init__()
        self.config = config
        n_embd = config.n_embd
        self.transformer = nn.ModuleDict(
            {
                "wte": nn.Embedding(config.vocab_size, n_embd),
                "wpe": nn.Embedding(config.block_size, n_embd),
                "drop": nn.Dropout(config.dropout),
                "h": nn.ModuleList(
                    NanoBlock(n_embd, config.n_head, config.dropout, bias)
                    for _ in range(config.n_layer)
                ),
                "ln_f": NanoLayerNorm(n_embd, bias),
            }
        )
        self.lm_head = nn.Linear(n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying
        self.apply(self._init_weights)
        for name, parameter in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(parameter, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        positions = torch.arange(idx.size(1), dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(positions))
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))  # (B, T, V)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss


# --------------------------------------------------------------------------------------
# The timed training step (the same for both models)
# --------------------------------------------------------------------------------------


def adamw(model: nn.Module, lr: float = 1e-3, **options: bool) -> torch.optim.AdamW:
    """nanoGPT's optimizer: weight decay on tensors with 2 or more dimensions only."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in parameters if p.dim() >= 2], "weight_decay": 0.1},
        {"params": [p for p in parameters if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99), **options)


def train_steps(
    model: nn.Module, optimizer: torch.optim.Optimizer, batches: list[tuple[torch.Tensor, ...]]
) -> tuple[float, float]:
    """Run one optimizer step per batch; return the (wall-clock, CPU) seconds they took.

    With one thread, the CPU time of this process leaves out the time the operating system
    gave the core to other processes, so on a shared machine it is the steadier measure.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    for inputs, targets in batches:
        _, loss = model(inputs, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model per round")
    parser.add_argument("--rounds", type=int, default=21, help="rounds (medians reported)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--block-size", type=int, default=64)
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=128)
    parser.add_argument("--vocab-size", type=int, default=65)
    parser.add_argument(
        "--optimizer",
        choices=["default", "foreach", "fused"],
        default="default",
        help="AdamW implementation for all models (default: PyTorch's choice, as nanoGPT on a CPU)",
    )
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    sizes = {
        "vocab_size": args.vocab_size,
        "block_size": args.block_size,
        "n_layer": args.n_layer,
        "n_head": args.n_head,
        "n_embd": args.n_embd,
        "dropout": 0.0,
    }
    torch.manual_seed(0)
    models = {
        # llmzero's GPT with nanoGPT's layout for this recipe: no biases, exact GELU.
        "llmzero": GPT(GPTConfig(**sizes, bias=False, gelu_approximate="none")),
        "nanoGPT": NanoGPT(GPTConfig(**sizes), bias=False),
        # llmzero's GPT with its defaults, GPT-2's layout: biases and the tanh GELU.
        "llmzero-gpt2": GPT(GPTConfig(**sizes)),
    }
    extra = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    optimizers = {name: adamw(model, **extra[args.optimizer]) for name, model in models.items()}
    # The same network as "llmzero", with the optimizer llmzero's pretraining chapter uses:
    # configure_optimizer's AdamW (same groups and settings, PyTorch's fused kernel).
    models["llmzero+fused"] = GPT(GPTConfig(**sizes, bias=False, gelu_approximate="none"))
    optimizers["llmzero+fused"] = configure_optimizer(
        models["llmzero+fused"], learning_rate=1e-3, weight_decay=0.1, betas=(0.9, 0.99)
    )
    generator = torch.Generator().manual_seed(0)
    shape = (args.batch_size, args.block_size)
    batches = [
        (
            torch.randint(0, args.vocab_size, shape, generator=generator),
            torch.randint(0, args.vocab_size, shape, generator=generator),
        )
        for _ in range(args.steps)
    ]
    tokens = args.steps * args.batch_size * args.block_size

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), AdamW {args.optimizer}; "
        f"L={args.n_layer} H={args.n_head} C={args.n_embd} T={args.block_size} "
        f"B={args.batch_size} V={args.vocab_size}; {args.rounds} rounds of {args.steps} steps"
    )
    for name, model in models.items():
        n_params = sum(p.numel() for p in model.parameters())
        train_steps(model, optimizers[name], batches[: args.warmup])  # warm up caches
        print(f"  {name:13s} {n_params:,} parameters")

    rates: dict[str, dict[str, list[float]]] = {"wall": {}, "cpu": {}}
    names = list(models)
    for round_ in range(args.rounds):
        shift = round_ % len(names)  # rotate the order, so no model always runs first
        for name in names[shift:] + names[:shift]:
            wall, cpu = train_steps(models[name], optimizers[name], batches)
            rates["wall"].setdefault(name, []).append(tokens / wall)
            rates["cpu"].setdefault(name, []).append(tokens / cpu)
    for clock, label in (("wall", "wall-clock"), ("cpu", "CPU time")):
        print(f"tokens per second of {label}; ratio to nanoGPT: median (min-max over rounds)")
        for name in names:
            mine, theirs = rates[clock][name], rates[clock]["nanoGPT"]
            ratios = [a / b for a, b in zip(mine, theirs, strict=True)]
            print(
                f"  {name:13s} {statistics.median(mine):9,.0f}  {statistics.median(ratios):.3f} "
                f"({min(ratios):.3f}-{max(ratios):.3f})"
            )


if __name__ == "__main__":
    main()
