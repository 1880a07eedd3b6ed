"""Recurrent layers as ncnn computes them: RNN, LSTM (with a projection when ``hidden_size`` differs
from ``num_output``), GRU.  Input ``(T, size)``; output ``(T, num_output x directions)`` with the forward
and reverse halves side by side; optional outputs are the final hidden (and LSTM cell) states, one row
per direction; optional inputs are the initial states.

The int8 forms (``8=2``, weight-only int8 from ncnn2int8) run the same recurrences; only the products
change: ncnn quantizes each time step's input and the hidden state on the fly (``127 / absmax`` of the
row), sums int8 x int8 exactly and scales the sum by ``1 / (input scale * weight row scale)``, as
``src/layer/{rnn,lstm,gru}.cpp`` do."""

from __future__ import annotations

import numpy as np

from ncnnc.backends.numpy.int8_ops import accumulator_dtype, quantize_rows
from ncnnc.backends.numpy.registry import INT8, Op, register_op

F = np.float32


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return F(1) / (F(1) + np.exp(-x))


class Recurrent(Op):
    """Runs ``step`` over time, once per direction (``2=direction`` 0 forward, 1 reverse, 2 both)."""

    states = 1

    def __init__(self, layer) -> None:
        super().__init__(layer)
        self.w = {name: layer.weight(name).astype(F) for name in layer.weights}
        self.dirs = 2 if self.p["direction"] == 2 else 1

    def initial(self, inputs: tuple[np.ndarray, ...], batch: int, sizes: list[int]) -> list[np.ndarray]:
        """The initial states ``(N, dirs, size)``: given as inputs, else zeros."""
        given = list(inputs[1:])
        return [given[i].reshape(batch, self.dirs, size).astype(F) if i < len(given)
                else np.zeros((batch, self.dirs, size), F) for i, size in enumerate(sizes)]

    def run(self, x: np.ndarray, *states_in: np.ndarray) -> list[np.ndarray]:
        """The sequence output and, when the layer has them, the final states."""
        n, steps = x.shape[0], x.shape[1]
        states = self.initial((x, *states_in), n, self.state_sizes())
        outs = []
        for d in range(self.dirs):
            reverse = d == 1 or self.p["direction"] == 1
            state = [s[:, d] for s in states]
            seq = np.zeros((n, steps, self.p["num_output"]), F)
            for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
                state = self.step(d, self.operand(x[:, t].astype(F)), state)
                seq[:, t] = state[0]
            outs.append(seq)
            for s, final in zip(states, state):
                s[:, d] = final
        return [np.concatenate(outs, axis=2), *states][: len(self.layer.outputs)]

    def state_sizes(self) -> list[int]:
        """The size of each state (hidden first)."""
        return [self.p["num_output"]]

    def step(self, d: int, x, state: list[np.ndarray]) -> list[np.ndarray]:
        """One time step of direction ``d`` on the input operand ``x``: the new states (hidden first)."""
        raise NotImplementedError

    def operand(self, v: np.ndarray):
        """What :meth:`product` multiplies: the float32 rows ``(N, size)`` themselves."""
        return v

    def product(self, d: int, name: str, v, rows: slice) -> np.ndarray:
        """``v @ W[rows].T`` for weight ``name`` (``weight_xc`` or ``weight_hc``) of direction ``d``."""
        return v @ self.w[name][d][rows].T


@register_op("RNN")
class RNN(Recurrent):
    """``h = tanh(W_xc x + W_hc h + b)``."""

    def step(self, d: int, x, state: list[np.ndarray]) -> list[np.ndarray]:
        """The new hidden state."""
        every, h = slice(None), self.operand(state[0])
        pre = self.w["bias_c"][d][0] + self.product(d, "weight_xc", x, every) + self.product(d, "weight_hc", h, every)
        return [np.tanh(pre).astype(F)]


@register_op("LSTM")
class LSTM(Recurrent):
    """Gates I, F, O, G; ``c = F c + I G``, ``h = O tanh(c)`` (then ``W_hr h`` with a projection)."""

    def state_sizes(self) -> list[int]:
        """Hidden (num_output) and cell (hidden_size)."""
        return [self.p["num_output"], self.p["hidden_size"]]

    def step(self, d: int, x, state: list[np.ndarray]) -> list[np.ndarray]:
        """The new hidden and cell states."""
        w, hs, h = self.w, self.p["hidden_size"], self.operand(state[0])
        bias = w["bias_c"][d]
        i, f, o, g = (bias[k] + self.product(d, "weight_xc", x, slice(k * hs, (k + 1) * hs))
                      + self.product(d, "weight_hc", h, slice(k * hs, (k + 1) * hs)) for k in range(4))
        cell = _sigmoid(f) * state[1] + _sigmoid(i) * np.tanh(g)
        hidden = _sigmoid(o) * np.tanh(cell)
        if "weight_hr" in w:
            hidden = hidden @ w["weight_hr"][d].T
        return [hidden.astype(F), cell.astype(F)]


@register_op("GRU")
class GRU(Recurrent):
    """Reset R and update U gates; ``n = tanh(W_xn x + b_wn + R (W_hn h + b_bn))``, ``h = (1-U) n + U h``."""

    def step(self, d: int, x, state: list[np.ndarray]) -> list[np.ndarray]:
        """The new hidden state."""
        k, b, h = self.p["num_output"], self.w["bias_c"][d], state[0]
        hq = self.operand(h)
        r, u, n = slice(0, k), slice(k, 2 * k), slice(2 * k, 3 * k)
        r = _sigmoid(b[0] + self.product(d, "weight_xc", x, r) + self.product(d, "weight_hc", hq, r))
        u = _sigmoid(b[1] + self.product(d, "weight_xc", x, u) + self.product(d, "weight_hc", hq, u))
        n = np.tanh(b[2] + r * (b[3] + self.product(d, "weight_hc", hq, n)) + self.product(d, "weight_xc", x, n))
        return [((F(1) - u) * n + u * h).astype(F)]


class _DynamicInt8:
    """The int8 products of a recurrent layer: operands quantized per row on the fly, exact int8 sums."""

    def __init__(self, layer) -> None:
        super().__init__(layer)
        self.descales = {name: F(1) / self.w.pop(f"{name}_int8_scales") for name in ("weight_xc", "weight_hc")}
        self.acc = {name: accumulator_dtype(self.w[name].shape[-1]) for name in ("weight_xc", "weight_hc")}

    def operand(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(int8 rows, 1 / scale per row)`` with ``scale = 127 / absmax`` (an all-zero row: scale 1)."""
        q, scale = quantize_rows(v)
        return q, (F(1) / scale).astype(F)

    def product(self, d: int, name: str, v: tuple[np.ndarray, np.ndarray], rows: slice) -> np.ndarray:
        """The exact int8 sum times ``descale_input * descale_weight_row``."""
        q, descale = v
        acc = self.acc[name]
        sums = (q.astype(acc) @ self.w[name][d][rows].astype(acc).T).astype(F)
        return sums * (descale[:, None] * self.descales[name][d][rows][None, :])


@register_op("RNN", INT8)
class Int8RNN(_DynamicInt8, RNN):
    """int8 RNN (``8=2``)."""


@register_op("LSTM", INT8)
class Int8LSTM(_DynamicInt8, LSTM):
    """int8 LSTM (``8=2``); a projection ``weight_hr`` stays float."""


@register_op("GRU", INT8)
class Int8GRU(_DynamicInt8, GRU):
    """int8 GRU (``8=2``)."""
