"""SqueezeNet v1.1 (shared plain fp32 model) in the numpy backend against the real ncnn runtime."""

from __future__ import annotations

import numpy as np
import pytest

from ncnnc.backends.ncnn_runtime import RuntimeNet
from ncnnc.backends.numpy import Interpreter
from ncnnc.core.preprocess import load_image, substract_mean_normalize
from ncnnc.frontends.ncnn import load

MEAN = [104.0, 117.0, 123.0]


@pytest.fixture(scope="module")
def model(squeezenet_dir):
    param, binf = squeezenet_dir / "squeezenet_v1.1.param", squeezenet_dir / "squeezenet_v1.1.bin"
    return load(param, binf), RuntimeNet(param, binf, num_threads=1)


def _tensor(path) -> np.ndarray:
    return substract_mean_normalize(load_image(path, "BGR", (227, 227)), MEAN)


def test_top1_matches_runtime_on_20_images(model, image_paths):
    graph, net = model
    paths = image_paths[::25][:20]
    batch = np.stack([_tensor(p) for p in paths])
    ours = Interpreter(graph).run({"data": batch}, ["prob"])["prob"].reshape(len(paths), -1)
    for i, path in enumerate(paths):
        ref = net.run({"data": batch[i]}, ["prob"])["prob"].reshape(-1)
        top2 = np.sort(ref)[-2:]
        if top2[1] - top2[0] < 1e-6:  # a tie: either class is right
            continue
        assert ours[i].argmax() == ref.argmax(), path.name
        assert np.abs(ours[i] - ref).max() < 1e-4


def test_every_blob_within_1e3_relative(model, image_paths):
    graph, net = model
    x = _tensor(image_paths[0])
    ours = Interpreter(graph).run({"data": x[None]}, graph.blobs)
    ref = net.run({"data": x}, graph.blobs)
    assert set(ours) == set(graph.blobs)
    for name in graph.blobs:
        a, r = ours[name][0], ref[name]
        assert a.shape == r.shape, name
        assert np.abs(a - r).max() <= 1e-3 * np.abs(r).max(), name
