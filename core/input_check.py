"""Checks of a user's input settings against the model, made before any work starts and blaming the
setting, not a file: an input shape that contradicts the first weighted layer's weights, and a
``mean=``/``norm=`` whose length does not match the channels the pixel type gives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ncnnc.core.errors import NcnncError
from ncnnc.core.ir import Graph, Layer

PIXEL_CHANNELS = {"RGB": 3, "BGR": 3, "GRAY": 1, "RGBA": 4, "BGRA": 4}
"""Channels of an image decoded as each pixel type (``RAW`` keeps the file's own)."""


def expected_channels(layer: Layer) -> int | None:
    """The input channels a Convolution's / ConvolutionDepthWise's weights were made for (None: not a conv)."""
    if layer.type not in ("Convolution", "ConvolutionDepthWise") or "weight" not in layer.weights:
        return None
    taps = layer.p("num_output") * layer.p("kernel_w") * layer.p("kernel_h")
    per_output = layer.p("weight_data_size") // max(1, taps)
    return int(per_output * (layer.p("group") if layer.type == "ConvolutionDepthWise" else 1))


def check_shape_fits(graph: Graph, given: Mapping[str, tuple[int, ...]], setting: str) -> dict[str, tuple[int, ...]]:
    """Infer the blob shapes from ``given`` input shapes (numpy order ``c, h, w``); a user error naming
    ``setting`` (``shape=[320,320]``) when they contradict a convolution's weights or cannot be inferred."""
    from ncnnc.core.shapes import infer_shapes

    try:
        shapes = infer_shapes(graph, dict(given))
    except NcnncError as e:
        raise NcnncError(f"{setting} does not fit the model: {e}") from None
    for layer in graph.layers:
        want = expected_channels(layer)
        got = shapes.get(layer.inputs[0]) if layer.inputs else None
        if want is None or got is None:
            continue
        # a 1-D blob of w values feeds a 1x1 Convolution as w channels (the runtime runs it as an InnerProduct)
        one_by_one = layer.type == "Convolution" and layer.p("kernel_w") == layer.p("kernel_h") == 1
        channels = got[0] if len(got) == 3 or (len(got) == 1 and one_by_one) else 1
        if channels != want:
            raise NcnncError(f"{setting} gives layer {layer.name} {channels} input channel(s) (blob shape "
                             f"{list(got)}), but its weights are made for {want}: give shape=[w,h,{want}]")
    return shapes


def check_mean_norm(mean: Sequence[float] | None, norm: Sequence[float] | None, pixel: str,
                    npy: bool = False, shape: Sequence[int] | None = None) -> None:
    """A user error when ``mean``/``norm`` has a length other than the pixel type's channel count, or the
    ``c`` of ``shape=[w,h,c]`` contradicts it."""
    channels = PIXEL_CHANNELS.get(pixel.upper())
    if npy or channels is None:
        return
    if shape is not None and len(shape) == 3 and shape[2] != channels:
        raise NcnncError(f"shape=[{','.join(map(str, shape))}] says {shape[2]} channel(s), but pixel={pixel.upper()} "
                         f"images have {channels}: give shape=[{shape[0]},{shape[1]},{channels}] or another pixel=")
    for key, values in (("mean", mean), ("norm", norm)):
        if values and len(values) != channels:
            shown = ",".join(f"{v:g}" for v in values)
            raise NcnncError(f"{key}=[{shown}] has {len(values)} value(s), but pixel={pixel.upper()} images have "
                             f"{channels} channel(s)")
