#!/usr/bin/env bash
# README command one: set up everything, then the main job on the embedded demo data:
# write the demo data -> train the mmlab model (det + seg + depth) -> evaluate -> visualise ->
# deploy (prune, int8, export, measure) -> print the final table. Every step is skipped when its
# output is already complete (delete work_dirs/demo to start over); an interrupted training run
# resumes from its latest checkpoint.
#
#   bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
START=$SECONDS
bash scripts/setup_env.sh
export PATH="$HOME/.local/bin:$PATH"
run() { uv run --frozen --no-sync "$@"; }

CONFIG=configs/demo_det_seg_depth_mmlab.py
WORK=work_dirs/demo
mkdir -p "$WORK"
stamp() { echo "$1 $(( SECONDS - START ))" >> "$WORK/timings.txt"; }
: > "$WORK/timings.txt"

echo "[demo] 1/5 demo data"
run python -m multitask_vision.data.demo --root data/demo
stamp data

MAX_ITERS=$(run python -c "from mmengine.config import Config; print(Config.fromfile('$CONFIG').train_cfg.max_iters)")
FINAL="$WORK/iter_${MAX_ITERS}.pth"
echo "[demo] 2/5 training ($MAX_ITERS iterations; progress and ETA below)"
if [[ -f "$FINAL" ]]; then
    echo "[demo] already trained: $FINAL (delete $WORK to retrain)"
elif [[ -f "$WORK/latest.pth" ]]; then
    echo "[demo] resuming the interrupted run from $WORK/latest.pth"
    run python train.py --config "$CONFIG" --work-dir "$WORK" --resume
else
    run python train.py --config "$CONFIG" --work-dir "$WORK"
fi
stamp train

echo "[demo] 3/5 evaluation of the final checkpoint"
if [[ -f "$WORK/test/metrics.json" && "$WORK/test/metrics.json" -nt "$FINAL" ]]; then
    echo "[demo] already evaluated: $WORK/test/metrics.json"
else
    run python test.py --config "$CONFIG" --checkpoint "$FINAL" --work-dir "$WORK/test"
fi
stamp eval

echo "[demo] 4/5 visualisations"
if [[ -f "$WORK/vis/index.html" && "$WORK/vis/index.html" -nt "$FINAL" ]]; then
    echo "[demo] already drawn: $WORK/vis/index.html"
else
    run python visualize.py --config "$CONFIG" --checkpoint "$FINAL" --num-samples 8 \
        --out-dir "$WORK/vis"
fi
stamp visualize

echo "[demo] 5/5 deployment: pruning, int8, export, measurements"
if [[ -f "$WORK/deploy/report.json" && "$WORK/deploy/report.json" -nt "$FINAL" ]]; then
    echo "[demo] already deployed: $WORK/deploy/report.json"
else
    run python deploy.py --config "$CONFIG" --checkpoint "$FINAL" \
        --deploy-config configs/deploy.py --output "$WORK/deploy" --overwrite
fi
stamp deploy

run python scripts/demo_report.py --work-dir "$WORK" --config "$CONFIG"
