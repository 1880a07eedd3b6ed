"""Recurrent layers in fp32 as ncnn computes them: RNN, LSTM (with a projection when ``hidden_size`` differs
from ``num_output``), GRU.  Input ``(T, size)``; output ``(T, num_output x directions)`` with the forward
and reverse halves side by side; optional outputs are the final hidden (and LSTM cell) states, one row
per direction; optional inputs are the initial states."""

from __future__ import annotations

import numpy as np

from ncnnc.backends.numpy.registry import Op, register_op

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
                state = self.step(d, x[:, t].astype(F), state)
                seq[:, t] = state[0]
            outs.append(seq)
            for s, final in zip(states, state):
                s[:, d] = final
        return [np.concatenate(outs, axis=2), *states][: len(self.layer.outputs)]

    def state_sizes(self) -> list[int]:
        """The size of each state (hidden first)."""
        return [self.p["num_output"]]

    def step(self, d: int, x: np.ndarray, state: list[np.ndarray]) -> list[np.ndarray]:
        """One time step of direction ``d``: the new states (hidden first)."""
        raise NotImplementedError


@register_op("RNN")
class RNN(Recurrent):
    """``h = tanh(W_xc x + W_hc h + b)``."""

    def step(self, d: int, x: np.ndarray, state: list[np.ndarray]) -> list[np.ndarray]:
        """The new hidden state."""
        w = self.w
        pre = x @ w["weight_xc"][d].T + w["bias_c"][d][0] + state[0] @ w["weight_hc"][d].T
        return [np.tanh(pre).astype(F)]


@register_op("LSTM")
class LSTM(Recurrent):
    """Gates I, F, O, G; ``c = F c + I G``, ``h = O tanh(c)`` (then ``W_hr h`` with a projection)."""

    def state_sizes(self) -> list[int]:
        """Hidden (num_output) and cell (hidden_size)."""
        return [self.p["num_output"], self.p["hidden_size"]]

    def step(self, d: int, x: np.ndarray, state: list[np.ndarray]) -> list[np.ndarray]:
        """The new hidden and cell states."""
        w, hs = self.w, self.p["hidden_size"]
        gates = x @ w["weight_xc"][d].T + state[0] @ w["weight_hc"][d].T
        bias = w["bias_c"][d]
        i, f, o, g = (gates[:, k * hs:(k + 1) * hs] + bias[k] for k in range(4))
        cell = _sigmoid(f) * state[1] + _sigmoid(i) * np.tanh(g)
        hidden = _sigmoid(o) * np.tanh(cell)
        if "weight_hr" in w:
            hidden = hidden @ w["weight_hr"][d].T
        return [hidden.astype(F), cell.astype(F)]


@register_op("GRU")
class GRU(Recurrent):
    """Reset R and update U gates; ``n = tanh(W_xn x + b_wn + R (W_hn h + b_bn))``, ``h = (1-U) n + U h``."""

    def step(self, d: int, x: np.ndarray, state: list[np.ndarray]) -> list[np.ndarray]:
        """The new hidden state."""
        w, k = self.w, self.p["num_output"]
        wx, wh, b = w["weight_xc"][d], w["weight_hc"][d], w["bias_c"][d]
        h = state[0]
        r = _sigmoid(x @ wx[:k].T + h @ wh[:k].T + b[0])
        u = _sigmoid(x @ wx[k:2 * k].T + h @ wh[k:2 * k].T + b[1])
        n = np.tanh(b[2] + r * (h @ wh[2 * k:].T + b[3]) + x @ wx[2 * k:].T)
        return [((F(1) - u) * n + u * h).astype(F)]
