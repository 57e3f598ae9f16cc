#!/usr/bin/env bash
# Recipe ablation of the accuracy issue: ResNet20 student, akamaster ResNet56 teacher, on
# ../shared/datasets/cifar10-jpeg-10k (8,019 train / 2,019 val JPEGs), 6 distill + 4 finetune epochs,
# batch 128, lr 0.05 — the epoch options of the issue's reproduction. One training process at a
# time with OMP_NUM_THREADS=1 (so a test suite may share the second core; compare epochs, not
# seconds, when it did). Each variant's JSON lines land in OUT/<variant>.log; summarise with
#     python benchmarks/recipe_table.py OUT
#
#     bash benchmarks/recipe_ablation.sh OUT [SEED]
#
# Other pairs: STUDENT=vgg11 TEACHER=vgg16 TEACHER_EPOCHS=30 bash benchmarks/recipe_ablation.sh OUT
# trains the teacher here first (plain CE on the same images) when no akamaster checkpoint exists for it.
# ONLY="teacher KD paper warm50ramp" runs just those groups (default: all), e.g. the VGG pair's subset.
# DISTILL_EPOCHS / FINETUNE_EPOCHS (default 6 / 4) shorten or lengthen the schedule; the KD student
# trains for their sum. Bring-your-own-model rows: STUDENT=torchvision:resnet18 ONLY="KD paper paper50 warm50ramp".
set -euo pipefail
OUT=${1:?usage: recipe_ablation.sh OUT [SEED]}
SEED=${2:-0}
SHARED=${SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
PY=${PY:-python}
STUDENT=${STUDENT:-resnet20}  # any model spec, e.g. torchvision:mobilenet_v2
DISTILL_EPOCHS=${DISTILL_EPOCHS:-6}
FINETUNE_EPOCHS=${FINETUNE_EPOCHS:-4}
TEACHER=${TEACHER:-resnet56}
D="--dataset imagefolder --data-dir $SHARED/datasets/cifar10-jpeg-10k"
O="--batch-size 128 --lr 0.05 --seed $SEED"
mkdir -p "$OUT"
step() { local name=$1; shift; local t0; t0=$(date +%s); "$@" > "$OUT/$name.log" 2>&1; echo "$name seconds=$(( $(date +%s) - t0 ))" >> "$OUT/times.txt"; }
pdd() { "$PY" -m pdd_edge "$@"; }
want() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }
if [ "$TEACHER" = resnet56 ]; then
  T="--teacher resnet56 --teacher-weights $SHARED/checkpoints/akamaster/resnet56-4bfd9763.th --teacher-mean 0.485,0.456,0.406 --teacher-std 0.229,0.224,0.225"
else
  if want teacher && [ ! -f "$OUT/teacher.pt" ]; then step teacher pdd train --model "$TEACHER" $D --epochs "${TEACHER_EPOCHS:-30}" --batch-size 128 --lr 0.05 --warmup-epochs 1 --seed "$SEED" --out "$OUT/teacher.pt" --json; fi
  T="--teacher-weights $OUT/teacher.pt"
fi
# KD: the unpruned KD student, distill + finetune epochs (the pipeline's baseline)
if want KD; then
step KD pdd distill --student "$STUDENT" $T $D $O --epochs $(( DISTILL_EPOCHS + FINETUNE_EPOCHS )) --no-masks --out "$OUT/KD" --json
fi
# paper: scratch student, N(0, 1e-3) masks, CE fine-tune (--recipe paper)
if want paper; then
step paper-distill pdd distill --student "$STUDENT" $T $D $O --epochs "$DISTILL_EPOCHS" --out "$OUT/paper" --json
step paper-prune pdd prune "$OUT/paper/best.pt" --out "$OUT/paper/pruned.pt" --json
step paper-finetune pdd finetune "$OUT/paper/pruned.pt" $D $O --epochs "$FINETUNE_EPOCHS" --out "$OUT/paper/ft" --json
fi
# paper50: as paper, plus a 50 % MACs budget from the first step (PDD with a MACs budget, from scratch)
if want paper50; then
step paper50-distill pdd distill --student "$STUDENT" $T $D $O --epochs "$DISTILL_EPOCHS" --target-macs-reduction 0.5 --out "$OUT/paper50" --json
step paper50-prune pdd prune "$OUT/paper50/best.pt" --out "$OUT/paper50/pruned.pt" --json
step paper50-finetune pdd finetune "$OUT/paper50/pruned.pt" $D $O --epochs "$FINETUNE_EPOCHS" --out "$OUT/paper50/ft" --json
fi
# warm: from the KD student, masks open, pure PDD; CE and KD fine-tune
if want warm; then
step warm-distill pdd distill --student "$STUDENT" --student-weights "$OUT/KD/best.pt" --mask-init open $T $D $O --epochs "$DISTILL_EPOCHS" --out "$OUT/warm" --json
step warm-prune pdd prune "$OUT/warm/best.pt" --out "$OUT/warm/pruned.pt" --json
step warm-finetune pdd finetune "$OUT/warm/pruned.pt" $D $O --epochs "$FINETUNE_EPOCHS" --out "$OUT/warm/ft" --json
step warm-finetune-kd pdd finetune "$OUT/warm/pruned.pt" $D $O --epochs "$FINETUNE_EPOCHS" --out "$OUT/warm/ftkd" $T --json
fi
# warm50: warm start + MACs target 0.5 (full target from step 0); CE and KD fine-tune
if want warm50; then
step warm50-distill pdd distill --student "$STUDENT" --student-weights "$OUT/KD/best.pt" --mask-init open $T $D $O --epochs "$DISTILL_EPOCHS" --target-macs-reduction 0.5 --out "$OUT/warm50" --json
step warm50-prune pdd prune "$OUT/warm50/best.pt" --out "$OUT/warm50/pruned.pt" --json
step warm50-finetune pdd finetune "$OUT/warm50/pruned.pt" $D $O --epochs "$FINETUNE_EPOCHS" --out "$OUT/warm50/ft" --json
step warm50-finetune-kd pdd finetune "$OUT/warm50/pruned.pt" $D $O --epochs "$FINETUNE_EPOCHS" --out "$OUT/warm50/ftkd" $T --json
fi
# warm50ramp: the same target ramped in over the first 3 of 6 epochs; CE fine-tune
if want warm50ramp; then
step warm50ramp-distill pdd distill --student "$STUDENT" --student-weights "$OUT/KD/best.pt" --mask-init open $T $D $O --epochs "$DISTILL_EPOCHS" --target-macs-reduction 0.5 --budget-ramp-epochs $(( DISTILL_EPOCHS / 2 )) --out "$OUT/warm50ramp" --json
step warm50ramp-prune pdd prune "$OUT/warm50ramp/best.pt" --out "$OUT/warm50ramp/pruned.pt" --json
step warm50ramp-finetune pdd finetune "$OUT/warm50ramp/pruned.pt" $D $O --epochs "$FINETUNE_EPOCHS" --out "$OUT/warm50ramp/ft" --json
fi
# warm50lr: warm start + MACs target 0.5 (no ramp), distillation at lr 0.01 (a fifth of the fine-tune's); CE fine-tune
if want warm50lr; then
step warm50lr-distill pdd distill --student "$STUDENT" --student-weights "$OUT/KD/best.pt" --mask-init open $T $D --batch-size 128 --lr 0.01 --seed "$SEED" --epochs "$DISTILL_EPOCHS" --target-macs-reduction 0.5 --out "$OUT/warm50lr" --json
step warm50lr-prune pdd prune "$OUT/warm50lr/best.pt" --out "$OUT/warm50lr/pruned.pt" --json
step warm50lr-finetune pdd finetune "$OUT/warm50lr/pruned.pt" $D $O --epochs "$FINETUNE_EPOCHS" --out "$OUT/warm50lr/ft" --json
fi
