#!/usr/bin/env bash
# Distributed training on one or more nodes with torch.distributed.run.
#   tools/dist_train.sh CONFIG GPUS [train.py args...]
# Environment: PYTHON (default: the repository's .venv, else python3), NNODES (1), NODE_RANK (0), PORT (29500), MASTER_ADDR (127.0.0.1).
# GPUS is the number of processes per node; on a CPU-only host each process
# trains on CPU with the gloo backend (see docs/en/faq.md).
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 CONFIG GPUS [train.py args...]" >&2
  exit 2
fi
CONFIG=$1
GPUS=$2
shift 2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=tools/pick_python.sh
source "$ROOT/tools/pick_python.sh"

PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$ROOT/tools/train.py" "$CONFIG" --launcher pytorch "$@"
