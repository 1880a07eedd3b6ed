"""int8 Gemm, MultiHeadAttention and SDPA (``18=2``): the weight-only int8 that ncnn2int8 writes, run with
the activations quantized on the fly, as ``src/layer/{gemm,multiheadattention,sdpa}.cpp`` compute them.

Every product is an int8 x int8 matrix product summed exactly: its left operand quantized per row and its
right operand as a whole (``127 / absmax``; an all-zero operand gets scale 1), or a constant int8 weight
with its stored scales; the sum is scaled by ``1 / (left scale * right scale)``.  The runtime's x86
kernels compute the same quantized operands and sums; their float epilogues may differ in the last bit.
"""

from __future__ import annotations

import numpy as np

from ncnnc.backends.numpy.attention_ops import SDPA, Gemm, MultiHeadAttention, softmax_last
from ncnnc.backends.numpy.int8_ops import int8_matmul, quantize_matrices, quantize_rows
from ncnnc.backends.numpy.registry import INT8, register_op
from ncnnc.core.ir import Layer

f32 = np.float32


def _check_term(op) -> None:
    if op.p["int8_scale_term"] != 2:
        raise op.unsupported(f"18={op.p['int8_scale_term']} (only 2, ncnn2int8's weight-only int8)")


@register_op("Gemm", INT8)
class Int8Gemm(Gemm):
    """int8 Gemm: A per row (a constant A has its stored row scales), B as a whole (a constant B has its
    stored scale), then ``alpha * (sum * descale + beta * C)``."""

    def __init__(self, layer: Layer) -> None:
        super().__init__(layer)
        _check_term(self)
        self.a_scales = layer.weight("A_data_int8_scales").ravel() if self.a is not None else None
        self.b_scale = f32(layer.weight("B_data_int8_scale").ravel()[0]) if self.b is not None else None

    def product(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The int8 product of the operands as they enter it (constants are int8 already)."""
        aq, sa = (a, self.a_scales) if self.a_scales is not None and a is self.a else quantize_rows(a)
        if self.b_scale is not None and b is self.b:
            bq, sb = b, np.full(aq.shape[:-2], self.b_scale, f32)
        else:
            bq, sb = quantize_matrices(b)
        return int8_matmul(aq, sa, bq, sb)


@register_op("MultiHeadAttention", INT8)
class Int8MultiHeadAttention(MultiHeadAttention):
    """int8 MultiHeadAttention: each projection quantizes its input as a whole against the weight's row
    scales; queries per position and keys per head for the scores; the probabilities per row and values
    per head; the attention output per position against the output weight's one scale."""

    def __init__(self, layer: Layer) -> None:
        super().__init__(layer)
        _check_term(self)
        if self.p["kv_cache"]:
            raise self.unsupported("7=kv_cache with int8")
        self.weight_scales = {name: layer.weight(f"{name}_weight_int8_scales").ravel() for name in ("q", "k", "v")}
        self.weight_scales["out"] = layer.weight("out_weight_int8_scale").ravel()[:1]

    def _project(self, x: np.ndarray, name: str) -> np.ndarray:
        """``x (N, seqlen, dim)`` through projection ``name``: ``sum * descale + bias``."""
        weight_t, bias = self.proj[name]
        xq, sx = quantize_matrices(x)
        # the weight is the left operand in ncnn (one scale per output row): transpose the product
        sums = int8_matmul(weight_t.T[None], np.broadcast_to(self.weight_scales[name], (x.shape[0], weight_t.shape[1])),
                           xq.transpose(0, 2, 1), sx)
        return sums.transpose(0, 2, 1) + bias

    def _split(self, y: np.ndarray) -> np.ndarray:
        n, seqlen, embed_dim = y.shape
        heads = self.p["num_heads"]
        return y.reshape(n, seqlen, heads, embed_dim // heads).transpose(0, 2, 1, 3)

    def run(self, *inputs: np.ndarray) -> np.ndarray:
        """``(N, seqlen, qdim)`` attention output."""
        r = self.roles
        q = self._split(self._project(inputs[r["q"]], "q") * self.scale)
        k, v = self._split(self._project(inputs[r["k"]], "k")), self._split(self._project(inputs[r["v"]], "v"))
        qq, sq = quantize_rows(q)
        kq, sk = quantize_matrices(k)
        scores = int8_matmul(qq, sq, kq.transpose(0, 1, 3, 2), sk)
        if self.p["attn_mask"]:
            mask = inputs[r["mask"]]
            scores = scores + (mask[:, None] if mask.ndim == 3 else mask)
        pq, sp = quantize_rows(softmax_last(scores))
        vq, sv = quantize_matrices(v)
        heads = int8_matmul(pq, sp, vq, sv)
        n, _, seqlen, _ = heads.shape
        merged = heads.transpose(0, 2, 1, 3).reshape(n, seqlen, -1)
        mq, sm = quantize_rows(merged)
        weight_t, bias = self.proj["out"]
        out = int8_matmul(mq, sm, weight_t[None], np.broadcast_to(self.weight_scales["out"][0], (n,)))
        return out + bias


@register_op("SDPA", INT8)
class Int8SDPA(SDPA):
    """int8 SDPA: queries per row and keys per head for the scores (then times the scale), the
    probabilities per row and values per head for the output."""

    def __init__(self, layer: Layer) -> None:
        super().__init__(layer)
        _check_term(self)

    def run(self, *inputs: np.ndarray) -> np.ndarray:
        """``softmax(q @ k^T * scale + mask) @ v`` per head with int8 products; inputs: q, k, v[, mask]."""
        q, k, v = (x[:, None] if x.ndim == 3 else x for x in inputs[:3])
        repeat = q.shape[1] // k.shape[1]
        k, v = np.repeat(k, repeat, axis=1), np.repeat(v, repeat, axis=1)
        scale = f32(self.p["scale"]) or f32(1.0 / np.sqrt(f32(q.shape[-1])))
        qq, sq = quantize_rows(q)
        kq, sk = quantize_matrices(k)
        scores = int8_matmul(qq, sq, kq.transpose(0, 1, 3, 2), sk) * scale
        if self.p["attn_mask"]:
            mask = inputs[3]
            scores = scores + (mask[:, None] if mask.ndim == 3 else mask)
        pq, sp = quantize_rows(softmax_last(scores))
        vq, sv = quantize_matrices(v)
        return int8_matmul(pq, sp, vq, sv)
