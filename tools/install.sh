#!/usr/bin/env bash
# Install the OpenMMLab stack and mmseg-kdas into the current Python.
#
#   bash tools/install.sh            # uses `python` on PATH (activate a venv first)
#   PYTHON=/path/to/python bash tools/install.sh
#
# Steps: torch (kept if one already imports) -> mmcv 2.1.0 built from source
# with its ops against that torch (cached wheel, keyed on mmcv, torch and the
# Python ABI) -> mmengine, mmsegmentation 1.2.2, mmpretrain -> this package
# (editable, with its test extra).
#
# Environment:
#   TORCH_SPEC     what to install when no torch imports
#                  (default: 'torch==2.14.1 torchvision==0.29.1')
#   MMCV_VERSION   default 2.1.0 (mmsegmentation 1.2.2 needs <2.2.0)
#   MMCV_CACHE     where built mmcv wheels are kept
#                  (default: ~/.cache/mmseg_kdas/mmcv-wheels)
#   MAX_JOBS       parallel compile jobs (default: number of cores)
set -euo pipefail

PY=${PYTHON:-python}
TORCH_SPEC=${TORCH_SPEC:-'torch==2.14.1 torchvision==0.29.1'}
MMCV_VERSION=${MMCV_VERSION:-2.1.0}
MMCV_CACHE=${MMCV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmseg_kdas/mmcv-wheels}
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STEP='start'
START=$(date +%s)

say() { printf '[install %4ss] %s\n' "$(( $(date +%s) - START ))" "$*"; }
fail() { printf '[install] FAILED at step "%s": %s\n' "$STEP" "$*" >&2; exit 1; }
trap 'fail "command exited with status $? (line $LINENO)"' ERR
pip_() { "$PY" -m pip install --disable-pip-version-check "$@"; }

STEP='python'
"$PY" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
  || fail "$PY is not a Python >= 3.11"
say "python: $("$PY" -c 'import sys; print(sys.executable, sys.version.split()[0])')"

STEP='torch'
if "$PY" -c 'import torch, torchvision' 2>/dev/null; then
  say "keeping the installed torch"
else
  say "installing $TORCH_SPEC"
  # shellcheck disable=SC2086
  pip_ -q $TORCH_SPEC
fi
read -r TORCH_VER CXX_STD WITH_CUDA ABI_TAG < <("$PY" - <<'EOF'
import inspect
import re
import sys

import torch
import torch.utils.cpp_extension as ext

# The C++ standard torch's own extension builder asks for is the one its
# headers need (C++17 up to torch 2.9, C++20 from torch 2.10 on).
m = re.search(r"'c\+\+(\d+)'", inspect.getsource(ext.BuildExtension))
cuda = int(torch.cuda.is_available() and ext.CUDA_HOME is not None)
abi = f'cp{sys.version_info.major}{sys.version_info.minor}'
print(torch.__version__.replace('+', '_'), m.group(1) if m else '17', cuda,
      abi)
EOF
)
say "torch $TORCH_VER, C++$CXX_STD, CUDA ops: $WITH_CUDA, ABI $ABI_TAG"

STEP='build tools'
# After torch, whose own requirements may upgrade setuptools: mmcv's
# setup.py imports pkg_resources, which setuptools 81 removed.
pip_ -q 'setuptools<81' wheel ninja packaging

STEP='mmcv'
KEY="mmcv-$MMCV_VERSION-torch$TORCH_VER-cuda$WITH_CUDA-$ABI_TAG"
WHEEL_DIR="$MMCV_CACHE/$KEY"
if ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
  say "mmcv: cached wheel $WHEEL_DIR"
  # Reinstalled each time: an mmcv built against another torch may still
  # import, and then fail inside an op.
  pip_ -q --no-deps --force-reinstall "$WHEEL_DIR"/mmcv-*.whl
  pip_ -q "$(ls "$WHEEL_DIR"/mmcv-*.whl)"
else
  BUILD=$(mktemp -d)
  say "mmcv: building $MMCV_VERSION from source in $BUILD" \
      "(MAX_JOBS=$MAX_JOBS; about 15 minutes on 2 cores)"
  "$PY" -m pip download -q --no-deps --no-binary :all: \
    --no-build-isolation "mmcv==$MMCV_VERSION" -d "$BUILD"
  tar -xzf "$BUILD/mmcv-$MMCV_VERSION.tar.gz" -C "$BUILD"
  SRC="$BUILD/mmcv-$MMCV_VERSION"
  if [ "$CXX_STD" != 17 ]; then
    say "mmcv: raising its -std=c++17 to -std=c++$CXX_STD for this torch"
    sed -i "s/-std=c++17/-std=c++$CXX_STD/g" "$SRC/setup.py"
  fi
  total=$(find "$SRC/mmcv/ops/csrc/pytorch" -maxdepth 2 -name '*.cpp' \
            -not -path '*/cuda/*' -not -path '*/npu/*' -not -path '*/mlu/*' \
            -not -path '*/mps/*' \
            | wc -l)
  if [ "$WITH_CUDA" = 1 ]; then
    total=$(( total + $(find "$SRC/mmcv/ops/csrc/pytorch/cuda" \
                          -name '*.cu' -o -name '*.cpp' \
                          | wc -l) ))
  fi
  (
    cd "$SRC"
    MMCV_WITH_OPS=1 FORCE_CUDA=$WITH_CUDA "$PY" -m pip wheel -v --no-deps \
      --no-build-isolation . -w "$BUILD/wheel"
  ) >"$BUILD/build.log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 30
    done_=$(find "$SRC/build" -name "*.o" 2>/dev/null | wc -l || true)
    say "mmcv: compiled $done_ of $total sources"
  done
  wait "$pid" || { tail -n 40 "$BUILD/build.log" >&2
                   fail "mmcv build failed; full log: $BUILD/build.log"; }
  mkdir -p "$WHEEL_DIR"
  cp "$BUILD"/wheel/mmcv-*.whl "$WHEEL_DIR/"
  say "mmcv: built and cached in $WHEEL_DIR"
  pip_ -q "$(ls "$WHEEL_DIR"/mmcv-*.whl)"
  rm -rf "$BUILD"
fi
"$PY" -c 'import mmcv.ops' || fail "mmcv.ops does not import"

STEP='openmmlab packages'
pip_ -q mmengine==0.10.7 mmsegmentation==1.2.2 mmpretrain==1.2.0 \
  ftfy regex

STEP='mmseg_kdas'
pip_ -q --no-build-isolation -e "$ROOT[tests]"

STEP='check'
"$PY" -c 'import mmseg_kdas, mmseg, mmcv.ops, mmpretrain; print(
    "mmseg", mmseg.__version__, "| mmcv", mmcv.__version__,
    "| mmpretrain", mmpretrain.__version__, "| mmseg_kdas",
    mmseg_kdas.__version__)'
say "done"
