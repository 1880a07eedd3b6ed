#!/usr/bin/env bash
# Install ncnnc, compile SqueezeNet v1.1 to int8 (as ncnn's tools do, then with --quality high) and evaluate
# each against fp32 in the real ncnn runtime.
#
# Default: the bundled example in examples/squeezenet/ (the ncnn model as ncnn's examples ship it, its
# labels, 32 ImageNet images; calibration on the first 16, evaluation on all 32).
# SHARED=../shared: the full shared set instead (calibration on the first 100 images, evaluation on 500).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${SHARED:-}" ]; then
    MODEL=$SHARED/models/squeezenet_v1.1
    IMAGES=$SHARED/images/imagenet-sample
    CALIB=100
else
    MODEL=examples/squeezenet
    IMAGES=examples/squeezenet/images
    CALIB=16
fi
OUT=${OUT:-out/squeezenet-int8}

python3 -m pip install --quiet -e '.[test]'
mkdir -p "$OUT"
find "$IMAGES" -type f | sort > "$OUT/images.txt"   # sort reads everything: no SIGPIPE under pipefail
head -n "$CALIB" "$OUT/images.txt" > "$OUT/calib.txt"

PRE=("mean=[104,117,123]" "norm=[1,1,1]" "shape=[227,227,3]" "pixel=BGR")
# ncnn's own toolchain in one command (ncnnoptimize + ncnn2table method=kl + ncnn2int8), then the same with
# --quality high (activation-scale search, learned rounding, 8-bit winograd weights, asymmetric inputs,
# exact image inputs)
for QUALITY in default high; do
    if [ "$QUALITY" = high ]; then DIR=$OUT-quality-high; else DIR=$OUT; fi
    echo "== ncnnc compile --quality $QUALITY"
    ncnnc compile "$MODEL/squeezenet_v1.1.param" "$MODEL/squeezenet_v1.1.bin" --int8 \
        --calib "$OUT/calib.txt" "${PRE[@]}" method=kl --quality "$QUALITY" -o "$DIR"
    ncnnc eval "$MODEL/squeezenet_v1.1.param" "$MODEL/squeezenet_v1.1.bin" "$DIR/model.param" "$DIR/model.bin" \
        "$IMAGES" --labels "$MODEL/synset_words.txt" "${PRE[@]}" --worst 3
done
