"""Tests of llmzero.core.autograd: every gradient is checked against torch.autograd in float64.

Tolerance: our engine computes in Python floats (IEEE float64) and torch in float64 too, so
the two may differ only by rounding in a different order of operations. We accept a
relative difference of 1e-10 (plus 1e-12 absolute, for values near zero), which is
millions of times looser than float64's rounding (about 1e-16) yet far tighter than any
wrong backward rule could pass.
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Callable

import pytest
import torch

from llmzero.core.autograd import MLP, Layer, Neuron, Value, numerical_gradient

REL_TOL = 1e-10
ABS_TOL = 1e-12


def assert_close(ours: float, theirs: float) -> None:
    assert math.isclose(ours, theirs, rel_tol=REL_TOL, abs_tol=ABS_TOL), (ours, theirs)


def check_against_torch(fn: Callable[..., object], *inputs: float) -> None:
    """Run ``fn`` on Values and on float64 tensors; compare the output and every input's grad."""
    ours = [Value(x) for x in inputs]
    out = fn(*ours)
    out.backward()  # type: ignore[attr-defined]
    theirs = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in inputs]
    reference = fn(*theirs)
    reference.backward()  # type: ignore[attr-defined]
    assert_close(out.data, reference.item())  # type: ignore[attr-defined]
    for value, tensor in zip(ours, theirs, strict=True):
        assert tensor.grad is not None
        assert_close(value.grad, tensor.grad.item())


# Each case: a function written so it works on both Values and tensors, and its inputs.
UNARY_AND_BINARY_OPS = {
    "add": (lambda a, b: a + b, (1.5, -2.25)),
    "radd": (lambda a: 3.0 + a, (0.7,)),
    "sub": (lambda a, b: a - b, (1.5, -2.25)),
    "rsub": (lambda a: 3.0 - a, (0.7,)),
    "mul": (lambda a, b: a * b, (1.5, -2.25)),
    "rmul": (lambda a: -4.0 * a, (0.7,)),
    "div": (lambda a, b: a / b, (1.5, -2.25)),
    "rtruediv": (lambda a: 2.0 / a, (0.7,)),
    "neg": (lambda a: -a, (0.7,)),
    "pow_int": (lambda a: a**3, (-1.3,)),
    "pow_fraction": (lambda a: a**0.5, (2.7,)),
    "pow_negative": (lambda a: a**-2, (1.9,)),
    "exp": (lambda a: a.exp(), (0.9,)),
    "log": (lambda a: a.log(), (2.3,)),
    "tanh": (lambda a: a.tanh(), (0.4,)),
    "relu_positive": (lambda a: a.relu(), (0.8,)),
    "relu_negative": (lambda a: a.relu(), (-0.8,)),
}


@pytest.mark.parametrize("name", sorted(UNARY_AND_BINARY_OPS))
def test_each_op_value_and_gradient_match_torch(name: str) -> None:
    fn, inputs = UNARY_AND_BINARY_OPS[name]
    check_against_torch(fn, *inputs)


def test_relu_gradient_at_exactly_zero_is_zero_like_torch() -> None:
    check_against_torch(lambda a: a.relu(), 0.0)


def test_composite_expression_with_shared_subexpressions_matches_torch() -> None:
    def expression(a, b, c):
        h = (a * b + c).tanh()
        return (h * h + (a / c).exp() - (b**2 + 1.0).log()) * a + h.relu()

    check_against_torch(expression, 0.3, -1.2, 2.0)


def test_gradient_accumulates_when_a_value_is_used_twice() -> None:
    a = Value(3.0)
    (a + a).backward()
    assert a.grad == 2.0
    b = Value(3.0)
    (b * b).backward()
    assert b.grad == 6.0


def test_backward_accumulates_across_calls_until_zero_grad() -> None:
    model = MLP(2, [3, 1], seed=1)
    loss = model([0.5, -1.0])
    loss.backward()  # type: ignore[union-attr]
    first = [p.grad for p in model.parameters()]
    loss = model([0.5, -1.0])
    loss.backward()  # type: ignore[union-attr]
    assert all(math.isclose(p.grad, 2 * g) for p, g in zip(model.parameters(), first, strict=True))
    model.zero_grad()
    assert all(p.grad == 0.0 for p in model.parameters())


def test_topological_order_lists_every_node_after_its_children() -> None:
    a, b = Value(1.0), Value(2.0)
    c = a * b
    d = c + a
    out = d.tanh()
    order = out.topological_order()
    position = {id(node): i for i, node in enumerate(order)}
    assert len(order) == 5 and order[-1] is out
    for node in order:
        for child in node.children:
            assert position[id(child)] < position[id(node)]


def test_backward_handles_graphs_deeper_than_the_recursion_limit() -> None:
    x = Value(0.5)
    total = x
    for _ in range(sys.getrecursionlimit() + 500):
        total = total + x
    total.backward()
    assert x.grad == sys.getrecursionlimit() + 501


def test_pow_rejects_a_value_exponent() -> None:
    with pytest.raises(TypeError):
        Value(2.0) ** Value(3.0)  # type: ignore[operator]


def test_neuron_rejects_an_unknown_activation() -> None:
    with pytest.raises(ValueError):
        Neuron(3, activation="sigmoid")


def test_mlp_has_expected_parameter_count_and_output_shape() -> None:
    model = MLP(4, [5, 3, 2], seed=0)
    assert len(model.parameters()) == (4 + 1) * 5 + (5 + 1) * 3 + (3 + 1) * 2
    outputs = model([1.0, 2.0, 3.0, 4.0])
    assert isinstance(outputs, list) and len(outputs) == 2
    assert isinstance(MLP(4, [5, 1])([1.0, 2.0, 3.0, 4.0]), Value)
    assert isinstance(Layer(2, 3)([1.0, 2.0]), list)


def test_mlp_same_seed_gives_same_weights() -> None:
    first = [p.data for p in MLP(3, [4, 1], seed=7).parameters()]
    again = [p.data for p in MLP(3, [4, 1], seed=7).parameters()]
    other = [p.data for p in MLP(3, [4, 1], seed=8).parameters()]
    assert first == again and first != other


def torch_mirror(model: MLP) -> list[tuple[torch.Tensor, torch.Tensor, str]]:
    """The MLP's weights as float64 tensors: one (weight, bias, activation) per layer."""
    layers = []
    for layer in model.layers:
        weight = torch.tensor(
            [[w.data for w in neuron.weights] for neuron in layer.neurons], dtype=torch.float64
        )  # (n_outputs, n_inputs)
        bias = torch.tensor([neuron.bias.data for neuron in layer.neurons], dtype=torch.float64)
        layers.append((weight.requires_grad_(), bias.requires_grad_(), layer.neurons[0].activation))
    return layers


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_mlp_parameter_gradients_match_torch(activation: str) -> None:
    rng = random.Random(0)
    model = MLP(3, [6, 4, 1], activation=activation, seed=3)
    inputs = [[rng.uniform(-2, 2) for _ in range(3)] for _ in range(8)]
    targets = [rng.choice([-1.0, 1.0]) for _ in range(8)]

    # Ours: mean logistic loss log(1 + exp(-y * f(x))) over the batch.
    losses = [(1.0 + (-y * model(x)).exp()).log() for x, y in zip(inputs, targets, strict=True)]
    loss = sum(losses) * (1.0 / len(losses))
    loss.backward()

    layers = torch_mirror(model)
    hidden = torch.tensor(inputs, dtype=torch.float64)  # (batch, 3)
    for weight, bias, act in layers:
        hidden = hidden @ weight.T + bias  # (batch, n_outputs)
        hidden = {"tanh": torch.tanh, "relu": torch.relu, "linear": lambda t: t}[act](hidden)
    y = torch.tensor(targets, dtype=torch.float64)  # (batch,)
    reference = torch.log1p(torch.exp(-y * hidden[:, 0])).mean()
    reference.backward()

    assert_close(loss.data, reference.item())
    ours = [p.grad for p in model.parameters()]
    theirs = []
    for weight, bias, _ in layers:
        assert weight.grad is not None and bias.grad is not None
        for row, b in zip(weight.grad, bias.grad, strict=True):  # one neuron: weights, then bias
            theirs.extend([*row.tolist(), b.item()])
    assert len(ours) == len(theirs)
    for g_ours, g_theirs in zip(ours, theirs, strict=True):
        assert_close(g_ours, g_theirs)


def test_numerical_gradient_agrees_with_backward() -> None:
    def f(v: list[float]) -> float:
        a, b = Value(v[0]), Value(v[1])
        return ((a * b).tanh() + (a**2).exp() / b).data

    a, b = Value(0.3), Value(1.7)
    ((a * b).tanh() + (a**2).exp() / b).backward()
    estimate = numerical_gradient(f, [0.3, 1.7])
    assert math.isclose(estimate[0], a.grad, rel_tol=1e-7)
    assert math.isclose(estimate[1], b.grad, rel_tol=1e-7)


def test_numerical_gradient_error_shrinks_like_eps_squared() -> None:
    # For f(x) = x**3 the central difference is exactly 3x**2 + eps**2.
    for eps in (1e-1, 1e-2):
        (estimate,) = numerical_gradient(lambda v: v[0] ** 3, [1.0], eps=eps)
        assert math.isclose(estimate - 3.0, eps**2, rel_tol=1e-6)


def test_numerical_gradient_leaves_the_input_unchanged() -> None:
    point = [1.0, 2.0]
    numerical_gradient(lambda v: v[0] * v[1], point)
    assert point == [1.0, 2.0]
