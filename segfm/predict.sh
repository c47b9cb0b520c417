#!/bin/sh
# The CVPR 2025 SegFM challenge's entry point: the evaluator runs `sh predict.sh` in /workspace of the container for
# every step of every case, with the case in /workspace/inputs and the answer expected in /workspace/outputs.
# Every *.npz in inputs/ is predicted (see bundle/configs/segfm_predict.json; segfm_rule "session" or "upstream").
set -e
cd /workspace/bundle
exec python -m monai.bundle run --config_file configs/segfm_predict.json \
    --input_dir /workspace/inputs --output_dir /workspace/outputs "$@"
