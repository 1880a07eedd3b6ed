"""ncnn-exact preprocessing: the tensor equals what the real ncnn runtime's ``from_pixels_resize`` +
``substract_mean_normalize`` give from the same decoded pixels."""

from __future__ import annotations

import ncnn
import numpy as np
import pytest

from ncnnc.core.errors import NcnncError
from ncnnc.core.preprocess import (
    decode_image,
    load_image,
    substract_mean_normalize,
    target_size,
)

MEAN = [104.0, 117.0, 123.0]
NORM = [0.017, 0.017, 0.017]
PIXEL_FROM_BGR = {"BGR": ncnn.Mat.PixelType.PIXEL_BGR, "RGB": ncnn.Mat.PixelType.PIXEL_BGR2RGB,
                  "GRAY": ncnn.Mat.PixelType.PIXEL_BGR2GRAY}


def ncnn_tensor(path, pixel: str, w: int, h: int, mean=None, norm=None) -> np.ndarray:
    """What ncnn makes of the same decoded pixels (handed over as BGR, as OpenCV would)."""
    bgr = np.ascontiguousarray(decode_image(path)[..., ::-1])
    mat = ncnn.Mat.from_pixels_resize(bgr, PIXEL_FROM_BGR[pixel], bgr.shape[1], bgr.shape[0], w, h)
    if mean is not None or norm is not None:
        c = 1 if pixel == "GRAY" else 3
        mat.substract_mean_normalize(list(mean or [])[:c], list(norm or [])[:c])
    return np.array(mat)


@pytest.mark.parametrize("pixel", ["BGR", "RGB", "GRAY"])
def test_matches_ncnn_on_shared_images(image_paths, pixel):
    for path in image_paths[:12]:
        ours = load_image(path, pixel, (227, 227))
        ref = ncnn_tensor(path, pixel, 227, 227)
        assert ours.shape == ref.shape
        assert np.abs(ours - ref).max() <= 1.0


def test_mean_norm_matches_ncnn(image_paths):
    for path in image_paths[:6]:
        ours = substract_mean_normalize(load_image(path, "BGR", (227, 227)), MEAN, NORM)
        ref = ncnn_tensor(path, "BGR", 227, 227, MEAN, NORM)
        assert np.abs(ours - ref).max() <= 1.0 * max(NORM) + 1e-5


def test_mean_only_and_batched():
    x = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    y = substract_mean_normalize(x, [1, 2, 3], None)
    assert np.array_equal(y[:, 1], x[:, 1] - 2)
    with pytest.raises(NcnncError, match="2 mean/norm values for 3 channels"):
        substract_mean_normalize(x, [1, 2], None)


@pytest.mark.parametrize("shape,size,expected", [
    ((227, 227), (500, 375), (227, 227)),
    ((0, 0), (500, 375), (500, 375)),
    ((-1, -1, 3), (500, 375), (500, 375)),
    ((250, 0), (500, 375), (250, 187)),
    ((0, 300), (500, 375), (400, 300)),
    ((224, -1, 3), (333, 500), (224, 336)),
])
def test_shape_rules(shape, size, expected):
    assert target_size(shape, *size) == expected


def test_shape_rules_on_an_image(image_paths):
    path = image_paths[0]
    h, w = decode_image(path).shape[:2]
    ours = load_image(path, "BGR", (200, 0, 3))
    tw, th = target_size((200, 0), w, h)
    assert ours.shape == (3, th, tw)
    assert np.abs(ours - ncnn_tensor(path, "BGR", tw, th)).max() <= 1.0
    assert load_image(path, "BGR", (0, 0)).shape == (3, h, w)


def test_rgba_and_raw(tmp_path):
    from PIL import Image

    rgba = np.random.default_rng(0).integers(0, 256, (9, 11, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    Image.fromarray(rgba[..., 0], "L").save(tmp_path / "g.png")
    assert np.array_equal(load_image(tmp_path / "a.png", "RGBA"), rgba.transpose(2, 0, 1))
    assert np.array_equal(load_image(tmp_path / "a.png", "BGRA")[0], rgba[..., 2])
    assert load_image(tmp_path / "g.png", "RAW").shape == (1, 9, 11)
    assert load_image(tmp_path / "a.png", "raw").shape == (4, 9, 11)


def test_bad_images(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(NcnncError) as e:
        load_image(bad)
    assert str(bad) in str(e.value) and "cannot decode" in str(e.value)
    with pytest.raises(NcnncError, match="not found"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(NcnncError, match="unknown pixel type"):
        load_image(bad, "YUV")
