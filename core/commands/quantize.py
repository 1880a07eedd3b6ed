"""``ncnnc quantize``: ncnn2int8's command line (``IN.param IN.bin OUT.param OUT.bin [TABLE]``; any
frontend's model files in place of ``IN.param IN.bin``).

With a table, layers with scales become int8; without one, only the weight-only (dynamic)
quantization of RNN/LSTM/GRU/Embed is done.  Float weights are stored fp16, as ncnn2int8 does.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``ncnnc quantize``."""
    parser.add_argument("paths", nargs="+", metavar="IN.param IN.bin OUT.param OUT.bin [TABLE]",
                        help="the model (IN.param IN.bin, or MODEL.onnx, or MODEL.prototxt MODEL.caffemodel), "
                             "OUT.param OUT.bin, and the calibration table (ncnn2table format; none: weight-only "
                             "int8 of RNN/LSTM/GRU/Embed)")
    parser.add_argument("--fp32-layers", metavar="NAME[,NAME]", default="",
                        help="layers to keep fp32 (as if commented out in the table)")
    parser.add_argument("--asymmetric", action="store_true",
                        help="inputs of layers that read ReLU outputs get 255 levels (as compile --asymmetric)")


def parse_layer_list(text: str) -> list[str]:
    """``a,b, c`` -> ``['a', 'b', 'c']``."""
    return [name.strip() for name in text.split(",") if name.strip()]


def run(args: argparse.Namespace) -> int:
    """Quantize and print what was done."""
    from ncnnc.backends.ncnn_writer import save
    from ncnnc.core.commands.run import split_model
    from ncnnc.core.errors import NcnncError
    from ncnnc.core.frontend import load_model
    from ncnnc.core.table import CalibrationTable
    from ncnnc.plugins.quantizer import quantize

    model, rest = split_model(args.paths)
    if len(rest) not in (2, 3):
        raise NcnncError("usage: ncnnc quantize IN.param IN.bin OUT.param OUT.bin [TABLE] "
                         "(or MODEL.onnx OUT.param OUT.bin [TABLE])")
    args.out_param, args.out_bin, table_path = rest[0], rest[1], (rest[2] if len(rest) == 3 else None)
    table = CalibrationTable.load(table_path) if table_path else None
    graph = load_model(model)
    result = quantize(graph, table, fp32_layers=parse_layer_list(args.fp32_layers),
                      model_path=model[0], table_path=table_path, asymmetric=args.asymmetric)
    save(result.graph, args.out_param, args.out_bin)
    print(result.report.summary())
    print(f"wrote {args.out_param} and {args.out_bin}")
    return 0
