#!/usr/bin/env bash
# The main job on an embedded default, on the CPU in a few minutes, with no
# download: a synthetic polyp data set -> a small teacher -> a KDAS student
# distilled from it -> both evaluated with the polyp metric -> the student
# exported alone -> image / ground truth / prediction overlays.
#
#   bash tools/demo.sh          # everything under work_dirs/demo
#
# It runs with the CPU settings of the study (reproducible_env of
# mmseg_kdas.study, used by tools/kd_study.py): the same CPU code paths
# (AVX2) and 2 threads on every x86-64 machine with AVX2, and every
# training iteration seeded from (seed, iteration) by IterationSeedHook
# (configs/demo), so its figures are the same to the digit on any such
# machine (README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export MKL_CBWR=AVX2,STRICT ATEN_CPU_CAPABILITY=avx2 \
  ONEDNN_MAX_CPU_ISA=AVX2 DNNL_MAX_CPU_ISA=AVX2 \
  OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
W=work_dirs/demo
TEACHER=configs/demo/polyp-pvt_pvtv2-b0_synthetic-128x128.py
KDAS=configs/demo/kdas_pvtv2-b0_pvtv2-tiny_synthetic-128x128.py
step() { printf '\n=== [demo %4ss] %s\n' "$SECONDS" "$*"; }
trap 'echo "demo FAILED at: $STEP" >&2' ERR

STEP='synthetic data'; step "1/5 $STEP -> $W/data"
"$PY" tools/dataset_converters/make_synthetic_polyp.py "$W/data" \
  --num-train 96 --num-test 24 --size 128 128

STEP='train the teacher'; step "2/5 $STEP -> $W/teacher"
"$PY" tools/train.py "$TEACHER" --work-dir "$W/teacher"

STEP='distil the student'; step "3/5 $STEP -> $W/kdas"
"$PY" tools/train.py "$KDAS" --work-dir "$W/kdas"

STEP='evaluate the teacher'; step "4/5 $STEP"
"$PY" tools/test.py "$TEACHER" "$W/teacher/iter_300.pth" \
  --work-dir "$W/test_teacher"

STEP='evaluate the exported student'; step "5/5 $STEP, overlays -> $W/overlays"
"$PY" tools/test.py "$W/kdas/student_config.py" \
  "$W/kdas/iter_300_student.pth" --work-dir "$W/test_student" \
  --show-dir "$W/overlays"

STEP='summary'; step "$STEP"
"$PY" tools/analysis_tools/summarize_tests.py \
  teacher="$W/test_teacher" student="$W/test_student" \
  --configs "$TEACHER" "$W/kdas/student_config.py"
echo "student alone: $W/kdas/iter_300_student.pth + student_config.py;" \
  "overlays: $W/overlays"
