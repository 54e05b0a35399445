#!/usr/bin/env bash
# Distributed testing through torchrun (mmengine's 'pytorch' launcher).
#   bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py options]
# Multi-node: NNODES=2 NODE_RANK=0|1 MASTER_ADDR=host PORT=29500 on each node.
# Without a GPU the processes run on the CPU over gloo (GPUS = processes).
set -e
. "$(dirname "$0")/_torchrun.sh"
torchrun_tool "$3" test.py "$1" "$2" --launcher pytorch "${@:4}"
