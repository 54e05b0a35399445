#!/usr/bin/env bash
# Distributed training through torchrun (mmengine's 'pytorch' launcher).
#   bash tools/dist_train.sh CONFIG GPUS [train.py options]
# Multi-node: NNODES=2 NODE_RANK=0|1 MASTER_ADDR=host PORT=29500 on each node.
# Without a GPU the processes train on the CPU over gloo (GPUS = processes).
set -e
. "$(dirname "$0")/_torchrun.sh"
torchrun_tool "$2" train.py "$1" --launcher pytorch "${@:3}"
