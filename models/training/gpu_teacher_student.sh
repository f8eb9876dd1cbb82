#!/bin/bash
# One device call (session 13): stage t1, a teacher 2x as wide as w2 in every layer (48-96-192-384-384, 11.0 M
# parameters, 4x the compute), widened from w2 (widen.py: it starts as w2, not from scratch, so a few GPU
# minutes build on w2's CPU hours), then stage d2: w2 distilled from that teacher's 8-view maps on every
# training tile. Both on the GPU; what comes back under $OUT (at most 8 files of 16 MiB): the teacher's
# checkpoint in 15 MB parts, the student's checkpoint, both logs. The whole call stays inside TOTAL_S seconds:
# the teacher trains T_MIN minutes, the student whatever is left.
#
#   /usr/bin/python3 models/training/gpu_pack.py --out .gpu-data      # here, once (git-ignored)
#   # device tool: carry [".gpu-data"], command: bash models/training/gpu_teacher_student.sh
#
# A CPU smoke test of the plumbing (a few steps each):
#   OUT=/tmp/smoke DEV=cpu WORKERS=2 STEPS=2 T_MIN=0.05 TOTAL_S=1500 VAL_EVERY=1 VIEWS=1 PY=/usr/bin/python3 \
#     CELLBRIDGE_DATA=../shared/data CELLBRIDGE_TRAINING_CACHE=models/training/cache bash models/training/gpu_teacher_student.sh
set -u
: "${OUT:?OUT must name the folder whose files come back}"
export CELLBRIDGE_DATA=${CELLBRIDGE_DATA:-.gpu-data} CELLBRIDGE_TRAINING_CACHE=${CELLBRIDGE_TRAINING_CACHE:-/tmp/cb-cache}
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
DEV=${DEV:-cuda}; WORKERS=${WORKERS:-14}; STEPS=${STEPS:-200}; VAL_EVERY=${VAL_EVERY:-25}  # the teacher's: its last validation counts
T_MIN=${T_MIN:-4.3}; TOTAL_S=${TOTAL_S:-575}; VIEWS=${VIEWS:-8}
P=models/training
TEACHER=/tmp/cb-t1
deadline=$((SECONDS + TOTAL_S))
mkdir -p "$OUT/t1" "$OUT/d2" "$TEACHER"
common=(--device "$DEV" --workers "$WORKERS" --batch 64 --steps-per-epoch "$STEPS" --set-shares 0.8,0.15,0.05
        --bn-batches 50 --no-export)

nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader 2>/dev/null
$PY $P/widen.py models/cellbridge-he-v2/checkpoint-fp16.pt --channels 48,96,192,384,384 \
    --out /tmp/cb-widened-48.pt || exit 1

set -o pipefail
timeout $((deadline - SECONDS)) $PY $P/train_v2.py --resume /tmp/cb-widened-48.pt --channels 48,96,192,384,384 \
    --out "$TEACHER" --stage t1 --lr 1e-3 --time-budget-min "$T_MIN" --val-every "$VAL_EVERY" "${common[@]}" \
    2>&1 | tee "$OUT/t1/log.txt" || { echo "teacher stage failed"; exit 1; }
cp "$TEACHER/training-log-t1.json" "$OUT/t1/"
split -b 15M "$TEACHER/checkpoint-fp16.pt" "$OUT/t1/part-"
sha256sum "$TEACHER/checkpoint-fp16.pt"

# The student's loop gets what is left, less ~100 s for loading, the teacher's maps, the first validation and the
# final save (all measured at well under that on the H200).
left=$((deadline - SECONDS - 100))
if [ "$left" -lt 45 ]; then echo "no time left for the student ($left s)"; exit 0; fi
s_min=$($PY -c "print(round($left / 60, 2))")
echo "student: $s_min min of training"
timeout $((deadline - SECONDS)) $PY $P/train_v2.py --resume models/cellbridge-he-v2/checkpoint-fp16.pt \
    --channels 24,48,96,192,192 --distill-from "$TEACHER/checkpoint-fp16.pt" --distill-views "$VIEWS" --distill-weight 0.5 \
    --out "$OUT/d2" --stage d2 --lr 5e-4 --time-budget-min "$s_min" --val-every 8 "${common[@]}" \
    2>&1 | tee "$OUT/d2/log.txt"
rc=$?
rm -f "$OUT/d2/training-log-d2.txt"  # the same lines as log.txt
# Cut short: the best validated weights so far (a run file, fp32) instead of the compact checkpoint.
if [ ! -f "$OUT/d2/checkpoint-fp16.pt" ] && [ -f $P/runs/cellbridge-he-v2-d2/best.pt ]; then
  cp $P/runs/cellbridge-he-v2-d2/best.pt "$OUT/d2/best.pt"
fi
ls -la "$OUT"/*
exit $rc
