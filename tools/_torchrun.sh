# Sourced by dist_train.sh and dist_test.sh: torchrun (mmengine's 'pytorch'
# launcher) of a tool of this folder.
#   torchrun_tool NPROC TOOL ARGS...
# runs tools/TOOL ARGS... in NPROC processes on this node, with this checkout
# on PYTHONPATH. Multi-node: NNODES=2 NODE_RANK=0|1 MASTER_ADDR=host
# PORT=29500 on each node; PYTHON picks the interpreter, OMP_NUM_THREADS
# (default 1) the threads of each process.
torchrun_tool() {
  local nproc=$1 tool=$2 tools
  tools=$(dirname "${BASH_SOURCE[0]}")
  shift 2
  PYTHONPATH="$tools/..":${PYTHONPATH:-} \
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} \
  "${PYTHON:-python}" -m torch.distributed.run \
      --nnodes="${NNODES:-1}" \
      --node_rank="${NODE_RANK:-0}" \
      --master_addr="${MASTER_ADDR:-127.0.0.1}" \
      --nproc_per_node="$nproc" \
      --master_port="${PORT:-29500}" \
      "$tools/$tool" "$@"
}
