"""``ncnnc quantize``: ncnn2int8's command line (``IN.param IN.bin OUT.param OUT.bin [TABLE]``).

With a table, layers with scales become int8; without one, only the weight-only (dynamic)
quantization of RNN/LSTM/GRU/Embed is done.  Float weights are stored fp16, as ncnn2int8 does.
"""

from __future__ import annotations

import argparse

NAME = "quantize"
HELP = "quantize an fp32 ncnn model with a calibration table (as ncnn2int8)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``ncnnc quantize``."""
    parser.add_argument("in_param", metavar="IN.param")
    parser.add_argument("in_bin", metavar="IN.bin")
    parser.add_argument("out_param", metavar="OUT.param")
    parser.add_argument("out_bin", metavar="OUT.bin")
    parser.add_argument("table", metavar="TABLE", nargs="?",
                        help="calibration table (ncnn2table format); none: weight-only int8 of RNN/LSTM/GRU/Embed")
    parser.add_argument("--fp32-layers", metavar="NAME[,NAME]", default="",
                        help="layers to keep fp32 (as if commented out in the table)")


def parse_layer_list(text: str) -> list[str]:
    """``a,b, c`` -> ``['a', 'b', 'c']``."""
    return [name.strip() for name in text.split(",") if name.strip()]


def run(args: argparse.Namespace) -> int:
    """Quantize and print what was done."""
    from ncnnc.backends.ncnn_writer import save
    from ncnnc.core.table import CalibrationTable
    from ncnnc.frontends.ncnn import load
    from ncnnc.plugins.quantizer import quantize

    table = CalibrationTable.load(args.table) if args.table else None
    graph = load(args.in_param, args.in_bin)
    result = quantize(graph, table, fp32_layers=parse_layer_list(args.fp32_layers),
                      model_path=args.in_param, table_path=args.table)
    save(result.graph, args.out_param, args.out_bin)
    print(result.report.summary())
    print(f"wrote {args.out_param} and {args.out_bin}")
    return 0
