"""int8 latency on one thread: ncnnc's LLVM JIT against the real ncnn runtime and onnxruntime, plus the peak
throughput of the dot instruction each ncnnc target uses, all in this one process.

    python bench/bench_llvm.py [--models squeezenet,efficientnet] [--rounds 7] [--burst 20] [--agree 50]
                               [--model MODEL.param MODEL.bin]

Models: the shared SqueezeNet v1.1 (227x227 BGR, mean 104/117/123) and an EfficientNet-Lite0-like classifier
with random weights built by ``bench/models.py`` (224x224 RGB, (x - 127.5) / 127.5).  Both go through the same
path: ``ncnnc.compile`` (kl calibration on the first 100 sorted shared images, 2 calibration threads) writes the
int8 ``model.param``/``model.bin``, which is JIT-compiled for ``host`` and, when this CPU runs it, ``x86-64-v3``
(``--model`` gives SqueezeNet's int8 model instead of compiling it).

Contenders per model, every one on 1 thread: the ncnnc JITs; the ncnn runtime (PyPI ``ncnn``, its default fast
options) on the int8 model and on the fp32 model that ncnnc's optimizer makes of the original files; onnxruntime
(``intra_op_num_threads=1``, ``inter_op_num_threads=1``, sequential, all graph optimizations) on the fp32 ONNX
model and on two int8 QDQ models made here by ``quantize_static`` (MinMax) from the same 100 calibration images
preprocessed exactly as for ncnnc: u8 activations / s8 per-channel weights, and ORT's defaults (s8 / s8
per-tensor); Softmax is excluded from both (as ncnnc keeps it fp32; quantized, its output is mostly zeros).

Timing: each contender runs bursts of ``--burst`` forward passes on one preprocessed image; the ``--rounds``
rounds are interleaved (the starting contender rotates) so that load on this shared machine hits every contender
alike; a contender's figure is its *best round's* time per image (minimum over rounds of the burst mean).
Ratios are ``time / time of the fastest int8 peer`` (ncnn int8 or ORT int8) and ``time / ncnnc JIT host``.
With ``--agree N`` every contender also runs N held-out images (100..100+N): top-1 agreement of each int8
contender with its fp32 reference (ncnn fp32 for ncnnc and ncnn, ORT fp32 for ORT; the fp32 rows against each
other) and ``cos``, the cosine of the log-probabilities centred over classes and over images (the
image-dependent part of the logits; the random-weight model predicts nearly the same class for every image, so
its top-1 agreement says little).

Peak: a register-only llvmlite loop of ``k`` independent dot-instruction chains (no loads in the loop; the
AVX2 forms multiply the neighbouring accumulator, bitcast, so that LLVM can neither hoist nor merge them)
JIT-compiled for the target, ~2 ms per call, timed as extra contenders in every model's interleaved rounds (so
under the same load as that model; its best round, or the best of 10 runs right after the rounds if faster)
-> GMAC/s on one core.  MACs per instruction: ``vpdpbusd`` zmm 64, ``vpmaddubsw`` ymm 32, ``vpmaddwd`` ymm 16.
Each JIT's model MACs / time is given as a fraction of its target's peak: the host's ``vpdpbusd``;
x86-64-v3's ``vpmaddwd`` (what its convolutions use: exact on int16-widened operands) and ``vpmaddubsw``
(the usual AVX2 int8 reference, which saturates at int16).  MACs by ``ncnnc.core.cost``: SqueezeNet
418.47 M, the EfficientNet-like 385.19 M.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import ctypes  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import save_efficientnet_lite0_like  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("NCNNC_SHARED", ROOT.parent / "shared"))
SQUEEZENET = SHARED / "models" / "squeezenet_v1.1"
IMAGES = SHARED / "images" / "imagenet-sample"
JIT_HOST, JIT_V3 = "ncnnc JIT host int8", "ncnnc JIT x86-64-v3 int8"
NCNN_INT8, NCNN_FP32 = "ncnn runtime int8", "ncnn runtime fp32"
ORT_FP32, ORT_INT8, ORT_DEFAULT = "onnxruntime fp32", "onnxruntime int8 u8/s8 per-chan", "onnxruntime int8 defaults"
PEERS = (NCNN_INT8, ORT_INT8, ORT_DEFAULT)
Run = Callable[[np.ndarray], np.ndarray]


@dataclass
class ModelSpec:
    """One benchmark model: where its files come from and how its input is preprocessed."""

    key: str
    title: str
    preprocess: dict
    files: Callable[[Path], list[Path]] = field(repr=False)
    onnx: Callable[[Path], Path] = field(repr=False)


MODELS = {
    "squeezenet": ModelSpec(
        "squeezenet", "SqueezeNet v1.1, 227x227",
        {"mean": [104.0, 117.0, 123.0], "norm": [1.0, 1.0, 1.0], "shape": [227, 227, 3], "pixel": "BGR"},
        lambda tmp: [SQUEEZENET / "squeezenet_v1.1.param", SQUEEZENET / "squeezenet_v1.1.bin"],
        lambda tmp: SQUEEZENET / "squeezenet_v1.1.onnx"),
    "efficientnet": ModelSpec(
        "efficientnet", "EfficientNet-Lite0-like (random weights), 224x224",
        {"mean": [127.5] * 3, "norm": [1 / 127.5] * 3, "shape": [224, 224, 3], "pixel": "RGB"},
        lambda tmp: [save_efficientnet_lite0_like(tmp / "efficientnet_lite0_like.onnx")],
        lambda tmp: tmp / "efficientnet_lite0_like.onnx"),
}


def time_bursts(contenders: dict[str, Callable[[], object]], rounds: int, burst: int) -> dict[str, float]:
    """Best per-call seconds of each contender over interleaved rounds of ``burst`` calls (the best round's mean)."""
    best = {name: float("inf") for name in contenders}
    for fn in contenders.values():
        fn()  # warm up: page in code and weights, fill caches
    for r in range(rounds):
        names = list(contenders)
        names = names[r % len(names):] + names[: r % len(names)]
        for name in names:
            fn = contenders[name]
            start = time.perf_counter()
            for _ in range(burst):
                fn()
            best[name] = min(best[name], (time.perf_counter() - start) / burst)
    return best


def time_each(fn: Callable[[], object], calls: int) -> list[float]:
    """Seconds of each of ``calls`` back-to-back calls."""
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


# -- peak of the dot instructions -------------------------------------------------------------------------------

@dataclass(frozen=True)
class PeakKernel:
    """A dot instruction sequence: ``k`` independent accumulators, ``macs`` per counted instruction."""

    label: str
    target: str
    macs: int
    k: int


PEAK_KERNELS = {
    "vpdpbusd": PeakKernel("vpdpbusd zmm (u8 x s8 -> s32)", "host", 64, 24),
    "vpmaddwd": PeakKernel("vpmaddwd + vpaddd ymm (s16 x s16 -> s32)", "x86-64-v3", 16, 12),
    "vpmaddubsw": PeakKernel("vpmaddubsw + vpmaddwd + vpaddd ymm (u8 x s8)", "x86-64-v3", 32, 10),
}


def _peak_module(kind: str, k: int):
    """``void peak(i64 n, ptr io)``: ``n`` iterations of ``k`` independent dot instructions on registers;
    accumulators start from and end in ``io`` (vectors 2..k+1); ``vpdpbusd`` multiplies vectors 0 and 1, the
    AVX2 forms vector 1 and the neighbouring accumulator."""
    from llvmlite import ir

    from ncnnc.backends.llvm.irutil import I8, I16, I32, I64, PTR, VOID, intrinsic, load, store, vec

    module = ir.Module(name=f"peak_{kind}")
    fn = ir.Function(module, ir.FunctionType(VOID, [I64, PTR]), "peak")
    entry, header, body, done = (fn.append_basic_block(s) for s in ("entry", "head", "body", "done"))
    b = ir.IRBuilder(entry)
    n, io = fn.args
    acc_t = vec(I32, 16 if kind == "vpdpbusd" else 8)
    operand_t = {"vpdpbusd": acc_t, "vpmaddwd": vec(I16, 16), "vpmaddubsw": vec(I8, 32)}[kind]
    other, fixed = load(b, io, operand_t, 0), load(b, io, operand_t, 1)
    init = [load(b, io, acc_t, 2 + j) for j in range(k)]  # distinct memory: LLVM cannot merge the chains
    b.branch(header)
    b.position_at_end(header)
    i = b.phi(I64)
    accs = [b.phi(acc_t) for _ in range(k)]
    b.cbranch(b.icmp_signed("<", i, n), body, done)
    b.position_at_end(body)
    ones = ir.Constant(vec(I16, 16), [1] * 16)
    new = []
    for j, acc in enumerate(accs):
        if kind == "vpdpbusd":
            dot = intrinsic(module, "llvm.x86.avx512.vpdpbusd.512", acc_t, [acc_t] * 3)
            new.append(b.call(dot, [acc, other, fixed]))
            continue
        # the varying operand is the neighbouring accumulator (free bitcast): nothing to hoist out of the loop,
        # nothing to share or factor; a chain is one multiply + one add long, k chains keep the unit busy
        varying = b.bitcast(accs[(j + 1) % k], operand_t)
        if kind == "vpmaddwd":
            t = b.call(intrinsic(module, "llvm.x86.avx2.pmadd.wd", acc_t, [operand_t] * 2), [varying, fixed])
        else:
            t16 = b.call(intrinsic(module, "llvm.x86.avx2.pmadd.ub.sw", vec(I16, 16), [operand_t] * 2),
                         [varying, fixed])
            t = b.call(intrinsic(module, "llvm.x86.avx2.pmadd.wd", acc_t, [vec(I16, 16)] * 2), [t16, ones])
        new.append(b.add(acc, t))
    step = b.add(i, ir.Constant(I64, 1))
    b.branch(header)
    i.add_incoming(ir.Constant(I64, 0), entry)
    i.add_incoming(step, body)
    for acc, a0, a1 in zip(accs, init, new):
        acc.add_incoming(a0, entry)
        acc.add_incoming(a1, body)
    b.position_at_end(done)
    for j, acc in enumerate(accs):
        store(b, acc, io, 2 + j)
    b.ret_void()
    return module


class PeakLoop:
    """A JIT-compiled peak loop; calling it runs ``n`` iterations (``n`` scaled to about ``seconds``)."""

    def __init__(self, kind: str, seconds: float = 0.002) -> None:
        import llvmlite.binding as llvm

        from ncnnc.backends.llvm.codegen import optimize, target_machine
        from ncnnc.backends.llvm.targets import resolve

        self.spec = PEAK_KERNELS[kind]
        target = resolve(self.spec.target)
        self._engine = llvm.create_mcjit_compiler(optimize(_peak_module(kind, self.spec.k), target),
                                                  target_machine(target))
        self._engine.finalize_object()
        self._fn = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_void_p)(self._engine.get_function_address("peak"))
        self._io = np.random.default_rng(0).integers(-100, 100, (self.spec.k + 2) * 64, dtype=np.int8)
        self.n = 10_000
        while True:
            start = time.perf_counter()
            self()
            elapsed = time.perf_counter() - start
            if elapsed > seconds / 4:
                break
            self.n *= 4
        self.n = max(int(self.n * seconds / elapsed), 1)

    def __call__(self) -> None:
        """Run the loop once."""
        self._fn(self.n, self._io.ctypes.data)

    def gmacs(self, seconds: float) -> float:
        """GMAC/s of a run that took ``seconds``."""
        return self.n * self.spec.k * self.spec.macs / seconds / 1e9


# -- models and contenders ---------------------------------------------------------------------------------------

class CalibrationReader:
    """onnxruntime's CalibrationDataReader over preprocessed ``(N, c, h, w)`` tensors, one image at a time."""

    def __init__(self, name: str, batch: np.ndarray) -> None:
        self.name, self.batch, self.i = name, batch, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next image as a batch of one, None at the end."""
        if self.i >= len(self.batch):
            return None
        self.i += 1
        return {self.name: self.batch[self.i - 1: self.i]}

    def rewind(self) -> None:
        """Start again from the first image."""
        self.i = 0


def ort_session(path: Path):
    """An onnxruntime CPU session on one thread, sequential, all graph optimizations."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def ort_int8(fp32: Path, out: Path, calib: np.ndarray, ort_defaults: bool) -> Path:
    """A QDQ int8 model made by ``quantize_static``: u8 activations / s8 per-channel weights, or ORT's defaults."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    model = onnx.load(str(fp32))
    reader = CalibrationReader(model.graph.input[0].name, calib)
    # left alone, ORT quantizes Softmax's output to 8 bits: most probabilities become exactly 0
    softmax = [n.name for n in model.graph.node if n.op_type == "Softmax"]
    options = {} if ort_defaults else {"quant_format": QuantFormat.QDQ, "activation_type": QuantType.QUInt8,
                                       "weight_type": QuantType.QInt8, "per_channel": True}
    quantize_static(str(fp32), str(out), reader, nodes_to_exclude=softmax, **options)
    return out


@dataclass
class Prepared:
    """One model ready to run: its contenders (``x (c, h, w) -> probabilities``), references, MACs."""

    spec: ModelSpec
    runs: dict[str, Run]
    refs: dict[str, str]
    macs: int
    x: np.ndarray
    held_out: np.ndarray
    notes: list[str]


def prepare(spec: ModelSpec, tmp: Path, images: list[Path], args: argparse.Namespace) -> Prepared:
    """Compile the model with ncnnc, build the fp32 and ORT models, and make every contender."""
    from ncnnc.backends.llvm.jit import jit
    from ncnnc.backends.llvm.targets import is_native, resolve
    from ncnnc.backends.ncnn_runtime import RuntimeNet
    from ncnnc.backends.ncnn_writer import save
    from ncnnc.core.calibration import input_specs, load_batch
    from ncnnc.core.cost import graph_macs
    from ncnnc.core.frontend import load_model
    from ncnnc.core.optimize import optimize
    from ncnnc.core.pipeline import compile as compile_model
    from ncnnc.core.shapes import infer_shapes
    from ncnnc.frontends.ncnn import load

    work = tmp / spec.key
    work.mkdir()
    pre = spec.preprocess
    files = spec.files(work)
    onnx_path = spec.onnx(work)
    notes = []
    t = time.perf_counter()
    if spec.key == "squeezenet" and args.model:
        param, binf = Path(args.model[0]), Path(args.model[1])
        notes.append(f"int8 model given: {param}")
    else:
        compile_model(files, calib=images[:100], out_dir=work / "int8", threads=2, **pre)
        param, binf = work / "int8" / "model.param", work / "int8" / "model.bin"
        notes.append(f"ncnnc.compile (kl, 100 images) {time.perf_counter() - t:.1f} s")
    fp32 = load_model([str(f) for f in files])
    optimize(fp32)
    fp32_param, fp32_bin = work / "fp32.param", work / "fp32.bin"
    save(fp32, fp32_param, fp32_bin)
    infer_shapes(fp32, {fp32.inputs[0]: tuple(reversed(pre["shape"]))})
    macs = sum(graph_macs(fp32).values())

    graph = load(str(param), str(binf))
    specs = input_specs(graph, [images], mean=[pre["mean"]], norm=[pre["norm"]], shape=[pre["shape"]],
                        pixel=[pre["pixel"]])
    calib = load_batch(specs, list(range(100)))["data"]
    held_out = load_batch(specs, list(range(100, 100 + args.agree)))["data"] if args.agree else calib[:0]
    x = np.ascontiguousarray(load_batch(specs, [100])["data"][0])

    runs: dict[str, Run] = {}
    for name, target in ((JIT_HOST, "host"), (JIT_V3, "x86-64-v3")):
        if target != "host" and not is_native(resolve(target)):
            notes.append(f"{target}: this CPU cannot run it, skipped")
            continue
        t = time.perf_counter()
        model = jit(graph, target, threads=1)
        cached = "cached" if model.built.cached else "compiled"
        notes.append(f"JIT {target} ({model.target.cpu}, {model.target.options['int8_dot']}): "
                     f"{time.perf_counter() - t:.1f} s ({cached})")
        runs[name] = lambda a, m=model: m.run_one([a])[0]
    int8_net = RuntimeNet(param, binf, num_threads=1, exact=False)
    fp32_net = RuntimeNet(fp32_param, fp32_bin, num_threads=1, exact=False)
    runs[NCNN_INT8] = lambda a: int8_net.run({"data": a}, ["prob"])["prob"]
    runs[NCNN_FP32] = lambda a: fp32_net.run({"data": a}, ["prob"])["prob"]
    logging.getLogger().setLevel(logging.ERROR)  # quantize_static's advice to pre-process
    t = time.perf_counter()
    sessions = {ORT_FP32: ort_session(onnx_path),
                ORT_INT8: ort_session(ort_int8(onnx_path, work / "qdq_u8s8.onnx", calib, False))}
    if not args.no_ort_default:
        sessions[ORT_DEFAULT] = ort_session(ort_int8(onnx_path, work / "qdq_default.onnx", calib, True))
    notes.append(f"onnxruntime quantize_static (MinMax, 100 images) {time.perf_counter() - t:.1f} s")
    for name, session in sessions.items():
        runs[name] = lambda a, s=session: s.run(["prob"], {"data": a[None]})[0]
    refs = {name: NCNN_FP32 for name in (JIT_HOST, JIT_V3, NCNN_INT8)}
    refs.update({ORT_INT8: ORT_FP32, ORT_DEFAULT: ORT_FP32, NCNN_FP32: ORT_FP32, ORT_FP32: NCNN_FP32})
    return Prepared(spec, runs, refs, macs, x, held_out, notes)


def _centred_log(probs: np.ndarray) -> np.ndarray:
    """Log-probabilities centred over classes and over images: the image-dependent part of the logits."""
    logp = np.log(np.maximum(probs, 1e-30))
    logp -= logp.mean(axis=1, keepdims=True)
    return logp - logp.mean(axis=0, keepdims=True)


def agreement(prepared: Prepared) -> dict[str, tuple[float, float]]:
    """``name -> (top-1 agreement, cos)`` of each contender with its reference on the held-out images."""
    if not len(prepared.held_out):
        return {}
    outs = {name: np.stack([np.asarray(run(np.ascontiguousarray(a))).reshape(-1) for a in prepared.held_out])
            for name, run in prepared.runs.items()}
    result = {}
    for name, out in outs.items():
        ref = outs[prepared.refs[name]]
        a, b = _centred_log(out).ravel(), _centred_log(ref).ravel()
        cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
        result[name] = (float(np.mean(out.argmax(1) == ref.argmax(1))), cos)
    distinct = len(set(outs[ORT_FP32].argmax(1)))
    prepared.notes.append(f"agreement on {len(prepared.held_out)} held-out images; fp32 top-1 takes {distinct} "
                          f"distinct classes")
    return result


def report(prepared: Prepared, best: dict[str, float], agree: dict[str, tuple[float, float]]) -> None:
    """One model's table: ms/image, ratio to the fastest int8 peer and to the host JIT, agreement."""
    print(f"\n== {prepared.spec.title}: {prepared.macs / 1e6:.2f} M MACs, 1 thread ==")
    for note in prepared.notes:
        print(f"   {note}")
    peer_name = min((n for n in PEERS if n in best), key=best.get)
    peer = best[peer_name]
    jit_time = best.get(JIT_HOST, float("nan"))
    print(f"{'contender':<32} {'ms/image':>9} {'/ best peer':>12} {'/ JIT host':>11} {'top-1':>7} {'cos':>8}  vs")
    for name, seconds in best.items():
        cols = f"{100 * agree[name][0]:>6.0f}% {agree[name][1]:>8.5f}  {prepared.refs[name]}" if name in agree else ""
        print(f"{name:<32} {1000 * seconds:>9.2f} {seconds / peer:>11.2f}x {seconds / jit_time:>10.2f}x {cols}")
    print(f"   (best int8 peer: {peer_name})")


def main() -> None:
    """Prepare every model, time the contenders, measure the peaks, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--models", default="squeezenet,efficientnet",
                        help="comma-separated: " + ", ".join(MODELS))
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds (default 7)")
    parser.add_argument("--burst", type=int, default=20, help="forward passes per contender per round (default 20)")
    parser.add_argument("--agree", type=int, default=50, help="held-out images for top-1 agreement (0: skip)")
    parser.add_argument("--no-ort-default", action="store_true", help="skip ORT's default int8 settings")
    parser.add_argument("--model", nargs=2, metavar=("PARAM", "BIN"),
                        help="SqueezeNet's int8 ncnn model, instead of compiling it")
    args = parser.parse_args()
    from ncnnc.backends.llvm.targets import is_native, resolve

    keys = [k.strip() for k in args.models.split(",") if k.strip()]
    unknown = [k for k in keys if k not in MODELS]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r} (known: {', '.join(MODELS)})")
    images = sorted(IMAGES.iterdir())
    started = time.perf_counter()
    host = resolve("host")
    print(f"host: {host.cpu}, int8_dot {host.options['int8_dot']}, {host.options['vector_bits']}-bit; "
          f"timing: best of {args.rounds} interleaved rounds of {args.burst} images")
    kinds = ["vpdpbusd"] if host.options["int8_dot"] == "avx512vnni" else []
    if is_native(resolve("x86-64-v3")):
        kinds += ["vpmaddwd", "vpmaddubsw"]
    loops = {kind: PeakLoop(kind) for kind in kinds}
    results = []
    with tempfile.TemporaryDirectory(prefix="ncnnc-bench-") as tmp:
        for key in keys:
            prepared = prepare(MODELS[key], Path(tmp), images, args)
            agree = agreement(prepared) if args.agree else {}
            contenders = {name: (lambda r=run, x=prepared.x: r(x)) for name, run in prepared.runs.items()}
            contenders.update({f"peak {kind}": loop for kind, loop in loops.items()})
            best = time_bursts(contenders, args.rounds, args.burst)
            # plus 10 runs right after the rounds, so that few rounds or short bursts still give a real peak
            peaks = {kind: loop.gmacs(min(best.pop(f"peak {kind}"), *time_each(loop, 10)))
                     for kind, loop in loops.items()}
            report(prepared, best, agree)
            results.append((prepared, best, peaks))
    print("\n== peak of one core: register-only llvmlite loops, ~2 ms calls timed in each model's rounds ==")
    print(f"{'target':<10} {'instructions':<48} {'MAC/instr':>9} {'chains':>6}  GMAC/s in the rounds of: "
          + ", ".join(prepared.spec.key for prepared, _, _ in results))
    for kind in kinds:
        spec = PEAK_KERNELS[kind]
        print(f"{spec.target:<10} {spec.label:<48} {spec.macs:>9} {spec.k:>6}  "
              + ", ".join(f"{peaks[kind]:.1f}" for _, _, peaks in results))
    print("\n== model MACs / time against the peak of the JIT's target (measured in the same rounds) ==")
    for prepared, best, peaks in results:
        for name, target_kinds in ((JIT_HOST, ["vpdpbusd"]), (JIT_V3, ["vpmaddwd", "vpmaddubsw"])):
            if name not in best:
                continue
            rate = prepared.macs / best[name] / 1e9
            fractions = ", ".join(f"{100 * rate / peaks[k]:.1f}% of {k}" for k in target_kinds if k in peaks)
            print(f"{prepared.spec.key:<13} {name:<26} {rate:6.1f} GMAC/s = {fractions}")
    print(f"\ntotal bench time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
