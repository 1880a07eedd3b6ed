"""The message classes built from frontends/caffe.proto without protoc: Caffe's field numbers,
defaults and wire format."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2

from ncnnc.frontends.caffe_reader import PROTO, caffe_pb
from ncnnc.frontends.proto_schema import ProtoSyntaxError, parse_proto

FIELD_NUMBERS = {
    # facts from BVLC caffe.proto (and ncnn's tools/caffe/caffe.proto for the fork fields)
    ("NetParameter", "layer"): 100, ("NetParameter", "layers"): 2, ("NetParameter", "input"): 3,
    ("NetParameter", "input_dim"): 4, ("NetParameter", "input_shape"): 8,
    ("BlobProto", "data"): 5, ("BlobProto", "shape"): 7, ("BlobProto", "double_data"): 8, ("BlobProto", "num"): 1,
    ("LayerParameter", "blobs"): 7, ("LayerParameter", "convolution_param"): 106,
    ("LayerParameter", "batch_norm_param"): 139, ("LayerParameter", "scale_param"): 142,
    ("LayerParameter", "input_param"): 143, ("LayerParameter", "norm_param"): 206,
    ("LayerParameter", "permute_param"): 202, ("LayerParameter", "shuffle_channel_param"): 145,
    ("V1LayerParameter", "blobs"): 6, ("V1LayerParameter", "type"): 5, ("V1LayerParameter", "convolution_param"): 10,
    ("ConvolutionParameter", "dilation"): 18, ("PoolingParameter", "round_mode"): 13,
}


@pytest.mark.parametrize(("message", "field"), sorted(FIELD_NUMBERS))
def test_field_numbers_are_caffes(message: str, field: str) -> None:
    assert caffe_pb()[message].DESCRIPTOR.fields_by_name[field].number == FIELD_NUMBERS[(message, field)]


def test_defaults_enums_and_packing() -> None:
    pb = caffe_pb()
    assert pb["ConvolutionParameter"]().bias_term is True
    assert pb["ConvolutionParameter"]().group == 1
    assert pb["BatchNormParameter"]().eps == pytest.approx(1e-5)
    assert pb["EltwiseParameter"]().operation == 1  # SUM
    assert pb["NormalizeParameter"]().eps == pytest.approx(1e-10)
    assert pb["NetState"]().phase == 1  # TEST
    data = pb["BlobProto"].DESCRIPTOR.fields_by_name["data"]
    assert data.is_packed if hasattr(data, "is_packed") else data.GetOptions().packed


def test_binary_roundtrip_matches_the_wire_format() -> None:
    net = caffe_pb()["NetParameter"](name="n")
    layer = net.layer.add(name="conv", type="Convolution")
    layer.blobs.add().data.extend([1.0, 2.0])
    raw = net.SerializeToString()
    # name (field 1, "n"), then layer (field 100 = tag 0xA2 0x06)
    assert raw.startswith(b"\x0a\x01n\xa2\x06")
    again = caffe_pb()["NetParameter"]()
    again.ParseFromString(raw)
    assert list(again.layer[0].blobs[0].data) == [1.0, 2.0]


def test_every_message_of_the_schema_is_built() -> None:
    file = parse_proto(PROTO.read_text(), "caffe.proto")
    names = set()

    def walk(prefix: str, messages) -> None:
        for m in messages:
            names.add(f"{prefix}.{m.name}")
            walk(f"{prefix}.{m.name}", m.nested_type)

    walk("caffe", file.message_type)
    assert names <= set(caffe_pb())
    assert isinstance(file, descriptor_pb2.FileDescriptorProto)


@pytest.mark.parametrize(("text", "error"), [
    ('syntax = "proto3"; message A { }', "proto2"),
    ("message A { optional Missing b = 1; }", "unknown type"),
    ("message A { optional int32 b = 1 [weird = 2]; }", "unsupported field option"),
    ("message A { optional int32 b = 1 }", "expected ';'"),
    ("service S { }", "unsupported top-level"),
])
def test_bad_schema_text(text: str, error: str) -> None:
    with pytest.raises(ProtoSyntaxError, match=error):
        parse_proto(text, "bad.proto")
