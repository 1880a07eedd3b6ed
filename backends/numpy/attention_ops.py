"""Matrix products and attention: Gemm, MultiHeadAttention, SDPA (fp32).

Operands follow ncnn's reading of a blob as a matrix: rows are ``h`` (``c`` for a 3-D blob whose
``h`` is 1), columns are ``w``.  Inputs arrive batched with a leading ``N`` axis.
"""

from __future__ import annotations

import numpy as np

from ncnnc.backends.numpy.registry import Op, register_op
from ncnnc.core.ir import Layer
from ncnnc.core.shapes import attention_inputs

f32 = np.float32


def softmax_last(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis as ncnn computes it: ``exp(x - max)``, then divide by the sum."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True, dtype=f32)


@register_op("Gemm")
class Gemm(Op):
    """``alpha * (op(A) @ op(B) + beta * C)``; A, B and C are constant weights or inputs in that
    order (``4/5/6=constantA/B/C``); ``2/3=transA/B``, ``14=output_transpose``, ``11=output_N1M``."""

    def __init__(self, layer: Layer) -> None:
        super().__init__(layer)
        self.a = self._constant("A_data", "constantA", "transA")
        self.b = self._constant("B_data", "constantB", "transB")
        self.c = None
        if self.p["constantC"] and self.p["constant_broadcast_type_C"] != -1:
            c = layer.weight("C_data")
            self.c = c.reshape(-1, 1) if self.p["constant_broadcast_type_C"] == 1 else c

    def _constant(self, name: str, flag: str, trans: str) -> np.ndarray | None:
        """A constant operand as it enters the product (stored transposed when its trans flag is set)."""
        if not self.p[flag]:
            return None
        w = self.layer.weight(name)
        return np.ascontiguousarray(w.T) if self.p[trans] else w

    def _matrix(self, x: np.ndarray) -> np.ndarray:
        if x.ndim == 2:
            return x[:, None, :]
        if x.ndim == 4 and x.shape[2] == 1:
            return x[:, :, 0, :]
        if x.ndim != 3:
            raise self.unsupported(f"operand of shape {x.shape[1:]}")
        return x

    def _input_c(self, c: np.ndarray, m: int, n: int) -> np.ndarray:
        """A C input broadcast as ncnn picks it: a vector of size M is a column unless N == M."""
        c = c[:, None, :] if c.ndim == 2 else c
        if c.shape[1] == 1 and c.shape[2] == m and m != n:
            return c.transpose(0, 2, 1)
        return c

    def product(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``op(A) @ op(B)``."""
        return np.matmul(a, b)

    def run(self, *inputs: np.ndarray) -> np.ndarray:
        """``alpha * (op(A) @ op(B) + beta * C)`` per sample; inputs: the non-constant operands among A, B, C."""
        xs = list(inputs)
        a = self.a if self.a is not None else self._matrix(xs.pop(0))
        if self.a is None and self.p["transA"]:
            a = a.transpose(0, 2, 1)
        b = self.b if self.b is not None else self._matrix(xs.pop(0))
        if self.b is None and self.p["transB"]:
            b = b.transpose(0, 2, 1)
        out = self.product(a, b)
        m, n = out.shape[-2:]
        c = self.c if self.c is not None else (self._input_c(xs[0], m, n) if xs else None)
        if c is not None:
            out = out + c * f32(self.p["beta"])
        out = out * f32(self.p["alpha"])
        if out.ndim == 2:
            out = out[None]
        if self.p["output_transpose"]:
            out = out.transpose(0, 2, 1)
        if self.p["output_N1M"]:
            out = out[:, :, None, :]
        return np.ascontiguousarray(out, dtype=f32)


def mha_scale(layer: Layer) -> float:
    """MultiHeadAttention's query scale: ``6=scale``, or ``1/sqrt(embed_dim / num_heads)`` (integer
    division) when the param is not set."""
    if "scale" in layer.params:
        return float(layer.p("scale"))
    return float(1.0 / np.sqrt(f32(layer.p("embed_dim") // layer.p("num_heads"))))


@register_op("MultiHeadAttention")
class MultiHeadAttention(Op):
    """torch-style multi-head attention with q/k/v/out projections; with ``7=kv_cache`` the past keys
    and values come in and the new ones go out as ``(heads, seqlen, embed_dim / heads)`` blobs."""

    def __init__(self, layer: Layer) -> None:
        super().__init__(layer)
        self.proj = {name: (np.ascontiguousarray(layer.weight(f"{name}_weight").T), layer.weight(f"{name}_bias"))
                     for name in ("q", "k", "v", "out")}
        self.scale = f32(mha_scale(layer))
        self.roles = attention_inputs(layer)

    def _heads(self, x: np.ndarray, name: str) -> np.ndarray:
        weight_t, bias = self.proj[name]
        y = np.matmul(x, weight_t) + bias
        n, seqlen, embed_dim = y.shape
        heads = self.p["num_heads"]
        return y.reshape(n, seqlen, heads, embed_dim // heads).transpose(0, 2, 1, 3)

    def run(self, *inputs: np.ndarray) -> np.ndarray | list[np.ndarray]:
        """``(N, seqlen, embed_dim)`` attention output, plus the new keys and values with ``kv_cache``."""
        r = self.roles
        q = self._heads(inputs[r["q"]], "q") * self.scale
        k, v = self._heads(inputs[r["k"]], "k"), self._heads(inputs[r["v"]], "v")
        if self.p["kv_cache"]:
            past_k, past_v = inputs[r["past_k"]], inputs[r["past_v"]]
            if r["k"] == 0:  # self-attention appends to the cache, cross-attention reuses it
                k, v = np.concatenate([past_k, k], axis=2), np.concatenate([past_v, v], axis=2)
            else:
                k, v = past_k, past_v
        scores = np.matmul(q, k.transpose(0, 1, 3, 2))
        if self.p["attn_mask"]:
            mask = inputs[r["mask"]]
            scores = scores + (mask[:, None] if mask.ndim == 3 else mask)
        heads = np.matmul(softmax_last(scores), v)
        n, _, seqlen, _ = heads.shape
        weight_t, bias = self.proj["out"]
        out = np.matmul(heads.transpose(0, 2, 1, 3).reshape(n, seqlen, -1), weight_t) + bias
        return [out, k, v] if self.p["kv_cache"] else out


@register_op("SDPA")
class SDPA(Op):
    """``softmax(q @ k^T * scale + mask) @ v`` per head; keys and values may have fewer heads
    (groups) than queries.  ``6=scale`` 0 means ``1/sqrt(embed_dim)``."""

    def __init__(self, layer: Layer) -> None:
        super().__init__(layer)
        if self.p["kv_cache"]:
            raise self.unsupported("7=kv_cache")

    def run(self, *inputs: np.ndarray) -> np.ndarray:
        """``softmax(q @ k^T * scale + mask) @ v`` per head; inputs: q, k, v[, mask]."""
        q, k, v = (x[:, None] if x.ndim == 3 else x for x in inputs[:3])
        repeat = q.shape[1] // k.shape[1]
        k, v = np.repeat(k, repeat, axis=1), np.repeat(v, repeat, axis=1)
        scale = f32(self.p["scale"]) or f32(1.0 / np.sqrt(f32(q.shape[-1])))
        scores = np.matmul(q, k.transpose(0, 1, 3, 2)) * scale
        if self.p["attn_mask"]:
            mask = inputs[3]
            scores = scores + (mask[:, None] if mask.ndim == 3 else mask)
        return np.matmul(softmax_last(scores), v)
