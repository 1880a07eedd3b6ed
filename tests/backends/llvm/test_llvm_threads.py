"""The model function's thread count: every count gives the same bytes, in the JIT and in an armv8
object run under qemu (the driver's ``$NCNNC_THREADS``)."""

from __future__ import annotations

import numpy as np

from ncnnc.backends.llvm.build import build
from ncnnc.backends.llvm.jit import jit
from ncnnc.backends.llvm.native import run_native

from .test_llvm_mobilenet import quantized_mobilenet


def _model_and_images():
    rng = np.random.default_rng(21)
    images = rng.normal(0, 1, (5, 3, 33, 31)).astype(np.float32)
    return quantized_mobilenet(rng, images[:2]), images[2:]


def test_every_thread_count_gives_the_same_outputs():
    graph, images = _model_and_images()
    model = jit(graph, use_cache=False)
    assert any(step for step in model.built.steps if "pool" in step or "prepare" in step)
    for x in images:
        one = model.run_one([x], threads=1)
        for threads in (2, 3, 5):
            for a, b in zip(one, model.run_one([x], threads=threads)):
                np.testing.assert_array_equal(a, b)


def test_armv8_object_with_threads_equals_one_thread(require_cross):
    require_cross()
    graph, images = _model_and_images()
    built = build(graph, "armv8", use_cache=False)
    inputs = [{"data": x} for x in images]
    single = run_native(built, inputs)
    for got, want in zip(run_native(built, inputs, threads=3), single):
        np.testing.assert_array_equal(got["prob"], want["prob"])
