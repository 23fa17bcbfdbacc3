"""A small scalar automatic-differentiation engine, built in Part I's backpropagation chapter.

Every number in a computation is wrapped in a :class:`Value`. Arithmetic on values builds
a *computational graph*: each result remembers the values it was made from and how to
send a gradient back to them. Calling :meth:`Value.backward` on the final value (a loss)
visits the graph in reverse topological order and applies the chain rule at every node,
so afterwards each value's ``.grad`` holds the derivative of the loss with respect to it::

    from llmzero.core.autograd import Value
    x = Value(2.0)
    y = x * x + x.exp()
    y.backward()
    x.grad  # dy/dx = 2x + exp(x) = 11.389...

This is reverse-mode automatic differentiation, the same idea PyTorch's ``autograd``
applies to whole tensors. Working one scalar at a time makes every step visible and
makes the engine slow: it is for learning and for checking, not for training real models.

On top of :class:`Value` sit a tiny multilayer perceptron (:class:`Neuron`,
:class:`Layer`, :class:`MLP`) and :func:`numerical_gradient`, a finite-difference helper
for gradient checking.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence

__all__ = ["MLP", "Layer", "Module", "Neuron", "Value", "numerical_gradient"]


class Value:
    """One scalar in a computational graph: its value, its gradient and how it was made.

    Args:
        data: the number itself (stored as a Python ``float``, i.e. float64).
        children: the values this one was computed from (empty for inputs and parameters).
        op: a short name of the operation that made it (``"+"``, ``"tanh"``, ...), for display.
        label: an optional name, for display (e.g. in a drawing of the graph).

    ``grad`` starts at 0 and is *accumulated* by :meth:`backward`: a value used by several
    operations receives the sum of the gradients that flow back along each use.
    """

    def __init__(
        self, data: float, children: tuple[Value, ...] = (), op: str = "", label: str = ""
    ) -> None:
        self.data = float(data)
        self.grad = 0.0
        self.children = children
        self.op = op
        self.label = label
        # Adds this node's contribution to its children's .grad; set by the op that made it.
        self._backward: Callable[[], None] = lambda: None

    def __repr__(self) -> str:
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g})"

    # ------------------------------------------------------------------ binary operations

    def __add__(self, other: Value | float) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward() -> None:  # d(a + b)/da = 1, d(a + b)/db = 1
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other: Value | float) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward() -> None:  # d(a * b)/da = b, d(a * b)/db = a
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def __pow__(self, exponent: float) -> Value:
        """``self ** exponent`` for a constant (non-``Value``) exponent."""
        if isinstance(exponent, Value):
            raise TypeError("only constant exponents are supported: use exp() and log() instead")
        out = Value(self.data**exponent, (self,), f"**{exponent:g}")

        def _backward() -> None:  # d(a ** k)/da = k * a ** (k - 1)
            self.grad += exponent * self.data ** (exponent - 1) * out.grad

        out._backward = _backward
        return out

    # The rest is built from the operations above, so it needs no backward rule of its own.
    def __neg__(self) -> Value:
        return self * -1.0

    def __sub__(self, other: Value | float) -> Value:
        return self + (-other)

    def __truediv__(self, other: Value | float) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        return self * other**-1.0

    # Reflected versions, so that `2 * x`, `1 - x` and `sum(values)` (which starts at 0) work.
    def __radd__(self, other: float) -> Value:
        return self + other

    def __rmul__(self, other: float) -> Value:
        return self * other

    def __rsub__(self, other: float) -> Value:
        return Value(other) + (-self)

    def __rtruediv__(self, other: float) -> Value:
        return Value(other) * self**-1.0

    # ------------------------------------------------------------------ unary functions

    def exp(self) -> Value:
        """``e ** self``."""
        out = Value(math.exp(self.data), (self,), "exp")

        def _backward() -> None:  # d exp(a)/da = exp(a), which is out.data
            self.grad += out.data * out.grad

        out._backward = _backward
        return out

    def log(self) -> Value:
        """The natural logarithm (``self.data`` must be positive)."""
        out = Value(math.log(self.data), (self,), "log")

        def _backward() -> None:  # d log(a)/da = 1 / a
            self.grad += out.grad / self.data

        out._backward = _backward
        return out

    def tanh(self) -> Value:
        """The hyperbolic tangent, a smooth squashing function onto (-1, 1)."""
        out = Value(math.tanh(self.data), (self,), "tanh")

        def _backward() -> None:  # d tanh(a)/da = 1 - tanh(a) ** 2
            self.grad += (1.0 - out.data**2) * out.grad

        out._backward = _backward
        return out

    def relu(self) -> Value:
        """``max(0, self)``; its derivative at exactly 0 is taken to be 0, as in PyTorch."""
        out = Value(self.data if self.data > 0 else 0.0, (self,), "relu")

        def _backward() -> None:  # d relu(a)/da = 1 if a > 0 else 0
            self.grad += (1.0 if self.data > 0 else 0.0) * out.grad

        out._backward = _backward
        return out

    # ------------------------------------------------------------------ backpropagation

    def topological_order(self) -> list[Value]:
        """Every value this one depends on (itself included), each after all its children.

        A depth-first search that emits a node once all its children are emitted. It uses an
        explicit stack rather than recursion, so deep graphs do not hit Python's recursion
        limit, and visits children in the same order a recursive version would.
        """
        order: list[Value] = []
        visited: set[int] = set()
        stack: list[tuple[Value, Iterator[Value]]] = [(self, iter(self.children))]
        visited.add(id(self))
        while stack:
            node, children = stack[-1]
            for child in children:
                if id(child) not in visited:
                    visited.add(id(child))
                    stack.append((child, iter(child.children)))
                    break
            else:  # every child is done: the node itself can go
                stack.pop()
                order.append(node)
        return order

    def backward(self) -> None:
        """Fill in ``.grad`` of every value this one depends on with d(self)/d(value).

        Sets ``self.grad = 1`` and applies each node's local chain-rule step in reverse
        topological order, so a node's gradient is complete before it is passed on.
        Gradients accumulate: zero them (e.g. :meth:`Module.zero_grad`) between calls.
        """
        order = self.topological_order()
        self.grad = 1.0
        for node in reversed(order):
            node._backward()


# ---------------------------------------------------------------------- a tiny neural network


class Module:
    """Base class of the network pieces: they expose their parameters and can zero them."""

    def parameters(self) -> list[Value]:
        """All trainable values, in a fixed order."""
        return []

    def zero_grad(self) -> None:
        """Set every parameter's gradient back to 0 before the next backward pass."""
        for parameter in self.parameters():
            parameter.grad = 0.0


class Neuron(Module):
    """One unit: ``activation(w · x + b)`` with ``activation`` one of tanh, relu or linear.

    Weights start uniform in ``[-1, 1] / sqrt(n_inputs)`` so that the weighted sum keeps
    roughly the scale of the inputs; the bias starts at 0. ``uniform(a, b)`` draws the random
    numbers (default: ``random.Random(0).uniform``); pass a seeded generator's ``uniform`` to
    control them.
    """

    def __init__(
        self,
        n_inputs: int,
        activation: str = "tanh",
        uniform: Callable[[float, float], float] | None = None,
    ):
        if activation not in {"tanh", "relu", "linear"}:
            raise ValueError(f"activation must be 'tanh', 'relu' or 'linear', not {activation!r}")
        uniform = uniform or random.Random(0).uniform
        scale = 1.0 / math.sqrt(n_inputs)
        self.weights = [Value(uniform(-1.0, 1.0) * scale) for _ in range(n_inputs)]
        self.bias = Value(0.0)
        self.activation = activation

    def __call__(self, inputs: Sequence[Value | float]) -> Value:
        total = sum((w * x for w, x in zip(self.weights, inputs, strict=True)), self.bias)
        if self.activation == "tanh":
            return total.tanh()
        if self.activation == "relu":
            return total.relu()
        return total

    def parameters(self) -> list[Value]:
        return [*self.weights, self.bias]

    def __repr__(self) -> str:
        return f"Neuron({len(self.weights)} inputs, {self.activation})"


class Layer(Module):
    """``n_outputs`` neurons that all read the same inputs (``uniform`` as in :class:`Neuron`)."""

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        activation: str = "tanh",
        uniform: Callable[[float, float], float] | None = None,
    ):
        uniform = uniform or random.Random(0).uniform
        self.neurons = [Neuron(n_inputs, activation, uniform) for _ in range(n_outputs)]

    def __call__(self, inputs: Sequence[Value | float]) -> list[Value]:
        return [neuron(inputs) for neuron in self.neurons]

    def parameters(self) -> list[Value]:
        return [p for neuron in self.neurons for p in neuron.parameters()]

    def __repr__(self) -> str:
        return f"Layer({len(self.neurons)} × {self.neurons[0]})"


class MLP(Module):
    """A multilayer perceptron: hidden layers with ``activation``, a linear output layer.

    ``MLP(3, [8, 1])`` maps 3 inputs through 8 hidden units to 1 output. Calling it on one
    example (a sequence of numbers) returns a list of output values, or the single value
    when there is one output. ``seed`` makes the initial weights reproducible.
    """

    def __init__(
        self, n_inputs: int, layer_sizes: Sequence[int], activation: str = "tanh", seed: int = 0
    ):
        uniform = random.Random(seed).uniform  # one stream of random numbers for all layers
        sizes = [n_inputs, *layer_sizes]
        self.layers = [
            Layer(
                sizes[i],
                sizes[i + 1],
                activation if i < len(layer_sizes) - 1 else "linear",
                uniform,
            )
            for i in range(len(layer_sizes))
        ]

    def __call__(self, inputs: Sequence[Value | float]) -> Value | list[Value]:
        values: Sequence[Value | float] = inputs
        for layer in self.layers:
            values = layer(values)
        return values[0] if len(values) == 1 else list(values)  # type: ignore[return-value]

    def parameters(self) -> list[Value]:
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self) -> str:
        return "MLP(" + ", ".join(repr(layer) for layer in self.layers) + ")"


# ---------------------------------------------------------------------- gradient checking


def numerical_gradient(
    f: Callable[[list[float]], float], x: Sequence[float], eps: float = 1e-6
) -> list[float]:
    """Estimate the gradient of ``f`` at ``x`` with central differences.

    For each coordinate ``i``: ``(f(x + eps·e_i) - f(x - eps·e_i)) / (2·eps)``, whose error
    shrinks like ``eps**2`` until floating-point round-off (which grows like ``1/eps``)
    takes over; ``eps=1e-6`` is a good compromise in float64. Costs ``2 * len(x)`` calls
    of ``f``, so it is for *checking* a backward pass on small problems, not for training::

        numerical_gradient(lambda v: v[0] ** 2 + 3 * v[1], [1.0, 5.0])  # ≈ [2.0, 3.0]
    """
    point = [float(v) for v in x]
    gradient = []
    for i in range(len(point)):
        original = point[i]
        point[i] = original + eps
        f_plus = f(list(point))
        point[i] = original - eps
        f_minus = f(list(point))
        point[i] = original
        gradient.append((f_plus - f_minus) / (2.0 * eps))
    return gradient
