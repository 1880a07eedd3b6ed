#!/usr/bin/env bash
# Install ncnnc, then compile the shared SqueezeNet v1.1 to int8 and evaluate it against fp32.
# Calibration: the first 100 shared images (sorted by name); evaluation: all 500, in the real ncnn runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
MODEL=$SHARED/models/squeezenet_v1.1
IMAGES=$SHARED/images/imagenet-sample
OUT=${OUT:-out/squeezenet-int8}

python3 -m pip install --quiet -e '.[test]'
mkdir -p "$OUT"
find "$IMAGES" -type f | sort | head -n 100 > "$OUT/calib.txt"

ncnnc compile "$MODEL/squeezenet_v1.1.param" "$MODEL/squeezenet_v1.1.bin" --int8 \
    --calib "$OUT/calib.txt" mean=[104,117,123] norm=[1,1,1] shape=[227,227,3] pixel=BGR method=kl \
    -o "$OUT"

ncnnc eval "$MODEL/squeezenet_v1.1.param" "$MODEL/squeezenet_v1.1.bin" "$OUT/model.param" "$OUT/model.bin" \
    "$IMAGES" --labels "$MODEL/synset_words.txt" mean=[104,117,123] norm=[1,1,1] shape=[227,227,3] pixel=BGR
