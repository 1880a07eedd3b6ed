"""Image preprocessing exactly as ncnn does it (``Mat::from_pixels_resize``, ``substract_mean_normalize``)
and ncnn2table's ``shape=`` rules, so calibration and evaluation see the tensors ncnn's tools see.

Images are decoded with Pillow.  Resizing is ncnn's fixed-point bilinear: 11-bit weights, rows
interpolated into 16-bit intermediates, then a rounded vertical blend (``mat_pixel_resize.cpp``).
As in ncnn2table (which reads BGR with OpenCV), the image is resized in its decoded colour
order and converted to the requested pixel type afterwards.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ncnnc.core.errors import NcnncError
from ncnnc.core.resources import check_shape

PIXEL_TYPES = ("RGB", "BGR", "GRAY", "RGBA", "BGRA", "RAW")
"""Pixel types a network can take; RAW keeps the decoded channels (gray, RGB or RGBA) as stored."""

_COEF_BITS = 11
_COEF_SCALE = 1 << _COEF_BITS


def _decode(path: str | Path, mode: str | None) -> np.ndarray:
    """Decode with Pillow to ``mode``; ``None`` keeps gray, RGB or RGBA as the file has it."""
    from PIL import Image, UnidentifiedImageError

    from ncnnc.core.fileio import check_input

    check_input(path, "image")
    try:
        with Image.open(path) as img:
            check_shape((img.height, img.width, len(img.getbands())), "the decoded image", itemsize=2, path=str(path))
            if mode is None:
                mode = img.mode if img.mode in ("L", "RGB", "RGBA") else \
                    ("RGBA" if "A" in img.getbands() else "RGB")
            arr = np.asarray(img if img.mode == mode else img.convert(mode), dtype=np.uint8)
    except FileNotFoundError:
        raise NcnncError("image file not found", str(path)) from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise NcnncError(f"cannot decode image ({e.__class__.__name__}: {e})", str(path)) from None
    return arr[:, :, None] if arr.ndim == 2 else arr


def decode_image(path: str | Path, with_alpha: bool = False) -> np.ndarray:
    """Decode an image file to ``(h, w, 3)`` uint8 RGB (``(h, w, 4)`` RGBA with ``with_alpha``)."""
    return _decode(path, "RGBA" if with_alpha else "RGB")


def _coeffs(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source index and the two 11-bit fixed-point weights of each destination position."""
    scale = src / dst
    fx = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    sx = np.floor(fx).astype(np.int64)
    fx = (fx - sx).astype(np.float32)
    low = sx < 0
    sx[low], fx[low] = 0, 0.0
    high = sx >= src - 1
    sx[high], fx[high] = src - 2, 1.0
    a0 = (np.float32(1) - fx) * np.float32(_COEF_SCALE)
    a1 = fx * np.float32(_COEF_SCALE)

    def saturate_short(v: np.ndarray) -> np.ndarray:
        rounded = np.where(v >= 0, v + np.float32(0.5), v - np.float32(0.5)).astype(np.int64)
        return np.clip(rounded, -32768, 32767)

    return sx, saturate_short(a0), saturate_short(a1)


@functools.lru_cache(maxsize=64)
def _resize_plan(w: int, h: int, c: int, tw: int, th: int) -> tuple[np.ndarray, ...]:
    """Gather indices and int32 weights of a ``(h, w, c) -> (th, tw, c)`` resize (cached per size).

    ``rows``: the source rows the vertical pass reads; ``top``/``bottom``: each output row's two
    rows among those; ``left``/``right``: the flat ``x * c + channel`` indices of each output
    value's two source pixels.  Callers must not modify the arrays.
    """
    xofs, a0, a1 = _coeffs(w, tw)
    yofs, b0, b1 = _coeffs(h, th)
    rows, pos = np.unique(np.concatenate([yofs, yofs + 1]), return_inverse=True)
    left = (xofs[:, None] * c + np.arange(c)).ravel()
    return (rows, pos[:th], pos[th:], left, left + c, np.repeat(a0, c).astype(np.int32),
            np.repeat(a1, c).astype(np.int32), b0.astype(np.int32)[:, None], b1.astype(np.int32)[:, None])


def resize_bilinear(pixels: np.ndarray, target_w: int, target_h: int) -> np.ndarray:
    """ncnn's fixed-point bilinear resize of ``(h, w, c)`` uint8 pixels to ``(target_h, target_w, c)``."""
    h, w, c = pixels.shape
    if (w, h) == (target_w, target_h):
        return pixels
    if w < 2 or h < 2:
        raise NcnncError(f"image of {w}x{h} pixels is too small to resize")
    rows, top, bottom, left, right, a0, a1, b0, b1 = _resize_plan(w, h, c, target_w, target_h)
    src = pixels.reshape(h, w * c)[rows]
    # horizontal pass into 16-bit rows (only the rows read below): (S[x] * a0 + S[x + 1] * a1) >> 4
    inter = np.multiply(np.take(src, left, axis=1), a0, dtype=np.int32)
    inter += np.multiply(np.take(src, right, axis=1), a1, dtype=np.int32)
    inter >>= 4
    # vertical pass: ((b0 * r0) >> 16) + ((b1 * r1) >> 16) + 2) >> 2
    out = np.take(inter, top, axis=0)
    out *= b0
    out >>= 16
    lower = np.take(inter, bottom, axis=0)
    lower *= b1
    lower >>= 16
    out += lower
    out += 2
    out >>= 2
    return out.astype(np.uint8).reshape(target_h, target_w, c)


def target_size(shape: Sequence[int], width: int, height: int) -> tuple[int, int]:
    """ncnn2table's ``shape=[w,h(,c)]`` rule: both <= 0 keep the image size; one <= 0 scales the
    image to the other, keeping the aspect ratio."""
    tw, th = int(shape[0]), int(shape[1])
    if tw <= 0 and th <= 0:
        return width, height
    if th <= 0:
        th = int(1.0 * height / (1.0 * width / tw))
    elif tw <= 0:
        tw = int(1.0 * width / (1.0 * height / th))
    return tw, th


def to_pixel_type(rgb: np.ndarray, pixel: str) -> np.ndarray:
    """Convert ``(h, w, 3|4)`` RGB(A) uint8 pixels to ``pixel`` (GRAY with ncnn's integer weights)."""
    if pixel == "RGB":
        return rgb[..., :3]
    if pixel == "BGR":
        return rgb[..., 2::-1]
    if pixel == "RGBA":
        return rgb
    if pixel == "BGRA":
        return rgb[..., [2, 1, 0, 3]]
    if pixel == "GRAY":
        r, g, b = (rgb[..., i].astype(np.int32) for i in range(3))
        return ((r * 77 + g * 150 + b * 29) >> 8).astype(np.uint8)[..., None]
    raise NcnncError(f"unknown pixel type {pixel!r} (expected one of {', '.join(PIXEL_TYPES)})")


def load_image(path: str | Path, pixel: str = "BGR", shape: Sequence[int] = (0, 0)) -> np.ndarray:
    """Decode, resize (ncnn2table's ``shape=`` rules) and convert an image: ``(c, h, w)`` float32
    pixel levels, the tensor ``ncnn::Mat::from_pixels_resize`` gives."""
    pixel = pixel.upper()
    if pixel not in PIXEL_TYPES:
        raise NcnncError(f"unknown pixel type {pixel!r} (expected one of {', '.join(PIXEL_TYPES)})")
    pixels = _decode(path, {"RAW": None, "RGBA": "RGBA", "BGRA": "RGBA"}.get(pixel, "RGB"))
    tw, th = target_size(shape, pixels.shape[1], pixels.shape[0])
    check_shape((pixels.shape[2], th, tw), "the resized image (shape=)", itemsize=8, path=str(path))
    try:
        pixels = resize_bilinear(pixels, tw, th)
    except NcnncError as e:
        raise NcnncError(e.message, str(path)) from None
    if pixel != "RAW":
        pixels = to_pixel_type(pixels, pixel)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32)


def substract_mean_normalize(x: np.ndarray, mean: Sequence[float] | None = None,
                             norm: Sequence[float] | None = None) -> np.ndarray:
    """``(x - mean[c]) * norm[c]`` per channel of a ``(c, h, w)`` (or batched) array, as ncnn does
    (an empty or missing list skips that step)."""
    out = np.asarray(x, dtype=np.float32)
    c = out.shape[-3]
    fresh = False  # whether ``out`` is ours to overwrite
    for values, op in ((mean, np.subtract), (norm, np.multiply)):
        if values is not None and len(values):
            if len(values) != c:
                raise NcnncError(f"{len(values)} mean/norm values for {c} channels")
            out = op(out, np.asarray(values, np.float32).reshape(c, 1, 1), out=out if fresh else None)
            fresh = True
    return out
