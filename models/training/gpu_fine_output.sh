#!/bin/bash
# One device call (session 14): stage h1, w2 with a 0.25 um/px output top (model.CellUNet fine_output): the network
# reads the 40x tiles (space-to-depth, as stage f1) and predicts flows, cell probability and classes at 0.25 um/px,
# trained on 40x targets. It starts as w2 exactly (the top's correction is zero; w2's maps upsampled bilinearly),
# so the GPU minutes go to what the finer grid adds: small and thin nuclei that w2 merges or loses even on its own
# training images (models/README "A 0.25 um/px output"). What comes back under $OUT: the compact checkpoint
# (fp16, ~6 MB) and the log. The whole call stays inside TOTAL_S seconds.
#
#   /usr/bin/python3 models/training/gpu_pack.py --out .gpu-data      # here, once (git-ignored)
#   # device tool: carry [".gpu-data"], command: bash models/training/gpu_fine_output.sh
#
# A CPU smoke test of the plumbing:
#   OUT=/tmp/smoke DEV=cpu WORKERS=2 STEPS=3 BATCH=4 T_MIN=0.05 BN=2 PY=/usr/bin/python3 \
#     CELLBRIDGE_DATA=../shared/data CELLBRIDGE_TRAINING_CACHE=models/training/cache bash models/training/gpu_fine_output.sh
set -u
: "${OUT:?OUT must name the folder whose files come back}"
export CELLBRIDGE_DATA=${CELLBRIDGE_DATA:-.gpu-data} CELLBRIDGE_TRAINING_CACHE=${CELLBRIDGE_TRAINING_CACHE:-/tmp/cb-cache}
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
DEV=${DEV:-cuda}; WORKERS=${WORKERS:-14}; STEPS=${STEPS:-200}; BATCH=${BATCH:-64}; BN=${BN:-50}
T_MIN=${T_MIN:-7.0}; TOTAL_S=${TOTAL_S:-570}
P=models/training
RUN=$P/runs/cellbridge-he-v2-h1
mkdir -p "$OUT/h1"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader 2>/dev/null
nproc

set -o pipefail
timeout "$TOTAL_S" $PY $P/train_v2.py --resume models/cellbridge-he-v2/checkpoint-fp16.pt --channels 24,48,96,192,192 \
    --fine-output 16 --out "$OUT/h1" --stage h1 --device "$DEV" --workers "$WORKERS" --batch "$BATCH" --crop 192 \
    --lr 1e-3 --time-budget-min "$T_MIN" --steps-per-epoch "$STEPS" --val-every 1000 --no-start-val \
    --set-shares 0.8,0.15,0.05 --bn-batches "$BN" --no-export 2>&1 | tee "$OUT/h1/log.txt"
rc=$?
rm -f "$OUT/h1/training-log-h1.txt"  # the same lines as log.txt
# Cut short before its last validation: the last weights (fp16, no optimizer state) instead of the compact checkpoint.
if [ ! -f "$OUT/h1/checkpoint-fp16.pt" ] && [ -f "$RUN/last.pt" ]; then
  $PY -c "
import sys
sys.path.insert(0, '$P')
from train_v2 import load_network, save_compact
net, ck = load_network('$RUN/last.pt')
save_compact('$OUT/h1/last-fp16.pt', net, {k: v for k, v in ck.items() if k not in ('model', 'model_fp16', 'opt')})
print('saved the last weights (not validated) as last-fp16.pt')
"
fi
ls -la "$OUT"/*
exit $rc
