"""Message classes from a ``.proto`` file at import time, without ``protoc``.

A small reader for the proto2 subset a schema such as ``caffe.proto`` uses: ``syntax``,
``package``, (nested) ``message`` and ``enum`` blocks, fields with a label, a scalar/message/enum
type, a number and the ``default``/``packed`` options.  It builds a ``FileDescriptorProto``, adds it
to a private descriptor pool and asks protobuf for the message classes, so the classes behave
exactly like ``protoc``-generated ones (text format, binary parsing, defaults, ``HasField``).
"""

from __future__ import annotations

import re
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
SCALARS = {
    "double": _F.TYPE_DOUBLE, "float": _F.TYPE_FLOAT, "int64": _F.TYPE_INT64, "uint64": _F.TYPE_UINT64,
    "int32": _F.TYPE_INT32, "fixed64": _F.TYPE_FIXED64, "fixed32": _F.TYPE_FIXED32, "bool": _F.TYPE_BOOL,
    "string": _F.TYPE_STRING, "bytes": _F.TYPE_BYTES, "uint32": _F.TYPE_UINT32, "sfixed32": _F.TYPE_SFIXED32,
    "sfixed64": _F.TYPE_SFIXED64, "sint32": _F.TYPE_SINT32, "sint64": _F.TYPE_SINT64,
}
LABELS = {"optional": _F.LABEL_OPTIONAL, "required": _F.LABEL_REQUIRED, "repeated": _F.LABEL_REPEATED}
_TOKEN = re.compile(r'\s+|//[^\n]*|/\*.*?\*/|(?P<tok>"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|'
                    r'[A-Za-z_][\w.]*|[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)|[{}\[\];=,<>()])',
                    re.S)


class ProtoSyntaxError(ValueError):
    """The ``.proto`` text is outside the supported subset or malformed."""


class _Tokens:
    def __init__(self, text: str, name: str) -> None:
        self.items: list[tuple[str, int]] = []
        pos, line = 0, 1
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                raise ProtoSyntaxError(f"{name}:{line}: unexpected character {text[pos]!r}")
            if m.group("tok"):
                self.items.append((m.group("tok"), line))
            line += text.count("\n", pos, m.end())
            pos = m.end()
        self.i = 0
        self.name = name

    def peek(self) -> str:
        return self.items[self.i][0] if self.i < len(self.items) else ""

    def next(self) -> str:
        if self.i >= len(self.items):
            raise ProtoSyntaxError(f"{self.name}: unexpected end of file")
        self.i += 1
        return self.items[self.i - 1][0]

    def expect(self, token: str) -> None:
        got = self.next()
        if got != token:
            raise self.error(f"expected {token!r}, got {got!r}")

    def error(self, message: str) -> ProtoSyntaxError:
        line = self.items[min(self.i, len(self.items)) - 1][1] if self.items else 0
        return ProtoSyntaxError(f"{self.name}:{line}: {message}")


def _unquote(token: str) -> str:
    return token[1:-1].encode().decode("unicode_escape")


def _parse_options(toks: _Tokens, field: descriptor_pb2.FieldDescriptorProto) -> None:
    toks.expect("[")
    while True:
        key = toks.next()
        toks.expect("=")
        value = toks.next()
        if key == "default":
            field.default_value = _unquote(value) if value[0] in "\"'" else value
        elif key == "packed":
            field.options.packed = value == "true"
        elif key != "deprecated":
            raise toks.error(f"unsupported field option {key!r}")
        if toks.peek() != ",":
            break
        toks.next()
    toks.expect("]")


def _parse_enum(toks: _Tokens, enum: descriptor_pb2.EnumDescriptorProto) -> None:
    enum.name = toks.next()
    toks.expect("{")
    while toks.peek() != "}":
        value = enum.value.add(name=toks.next())
        toks.expect("=")
        value.number = int(toks.next())
        toks.expect(";")
    toks.expect("}")


def _parse_message(toks: _Tokens, msg: descriptor_pb2.DescriptorProto) -> None:
    msg.name = toks.next()
    toks.expect("{")
    while toks.peek() != "}":
        word = toks.next()
        if word == "message":
            _parse_message(toks, msg.nested_type.add())
        elif word == "enum":
            _parse_enum(toks, msg.enum_type.add())
        elif word in LABELS:
            field = msg.field.add(label=LABELS[word])
            field.type_name = toks.next()  # resolved later
            field.name = toks.next()
            toks.expect("=")
            field.number = int(toks.next())
            if toks.peek() == "[":
                _parse_options(toks, field)
            toks.expect(";")
        else:
            raise toks.error(f"unsupported statement {word!r} in message {msg.name}")
    toks.expect("}")


def _resolve(file: descriptor_pb2.FileDescriptorProto) -> None:
    """Turn the type words of every field into scalar types or fully qualified message/enum names."""
    kinds: dict[str, int] = {}

    def collect(scope: str, msgs, enums) -> None:
        for e in enums:
            kinds[f"{scope}.{e.name}"] = _F.TYPE_ENUM
        for m in msgs:
            kinds[f"{scope}.{m.name}"] = _F.TYPE_MESSAGE
            collect(f"{scope}.{m.name}", m.nested_type, m.enum_type)

    root = f".{file.package}" if file.package else ""
    collect(root, file.message_type, file.enum_type)

    def fix(scope: str, msgs) -> None:
        for m in msgs:
            inner = f"{scope}.{m.name}"
            for field in m.field:
                word = field.type_name
                if word in SCALARS:
                    field.type = SCALARS[word]
                    field.ClearField("type_name")
                    continue
                candidates = [f"{s}.{word}" for s in _scopes(inner)]
                full = next((c for c in candidates if c in kinds), None)
                if full is None:
                    raise ProtoSyntaxError(f"{file.name}: unknown type {word!r} of field {m.name}.{field.name}")
                field.type, field.type_name = kinds[full], full
            fix(inner, m.nested_type)

    fix(root, file.message_type)


def _scopes(scope: str) -> list[str]:
    parts = scope.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]


def parse_proto(text: str, name: str = "schema.proto") -> descriptor_pb2.FileDescriptorProto:
    """Parse proto2 text into a ``FileDescriptorProto``."""
    toks = _Tokens(text, name)
    file = descriptor_pb2.FileDescriptorProto(name=name, syntax="proto2")
    while toks.peek():
        word = toks.next()
        if word == "syntax":
            toks.expect("=")
            if _unquote(toks.next()) != "proto2":
                raise toks.error("only proto2 schemas are supported")
            toks.expect(";")
        elif word == "package":
            file.package = toks.next()
            toks.expect(";")
        elif word == "message":
            _parse_message(toks, file.message_type.add())
        elif word == "enum":
            _parse_enum(toks, file.enum_type.add())
        else:
            raise toks.error(f"unsupported top-level statement {word!r}")
    _resolve(file)
    return file


def message_classes(proto_path: str | Path) -> dict[str, type]:
    """The message classes of a ``.proto`` file, by full name (``caffe.NetParameter``) and short name."""
    proto_path = Path(proto_path)
    file = parse_proto(proto_path.read_text(encoding="utf-8"), proto_path.name)
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(file.SerializeToString())
    fd = pool.FindFileByName(file.name)
    classes: dict[str, type] = {}

    def walk(descriptors) -> None:
        for desc in descriptors:
            cls = _message_class(desc)
            classes[desc.full_name] = cls
            classes.setdefault(desc.name, cls)
            walk(desc.nested_types)

    walk(fd.message_types_by_name.values())
    return classes


def _message_class(desc) -> type:
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(desc)
    return message_factory.MessageFactory(desc.file.pool).GetPrototype(desc)  # protobuf < 4.22
