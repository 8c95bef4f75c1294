#!/usr/bin/env bash
# Check a built mmcv wheel without installing it: unpack it into a temporary folder, put that
# first on PYTHONPATH and check the compiled CUDA version and the CPU ops (nms, RoIAlign);
# with a GPU, the same ops on CUDA tensors.
#   verify_mmcv_wheel.sh WHEEL [PYTHON] [EXPECTED_CUDA]   (EXPECTED_CUDA default: torch's)
set -euo pipefail
[[ $# -ge 1 ]] || { echo "usage: $0 WHEEL [PYTHON] [EXPECTED_CUDA]" >&2; exit 2; }
WHEEL="$(realpath "$1")"; PY="$(command -v "${2:-python3}")"; WANT="${3:-}"
# absolute (the check runs inside a temporary folder), not resolved: a venv's python is a link
[[ "$PY" == */* && "$PY" != /* ]] && PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"
[[ -f "$WHEEL" && -n "$PY" ]] || { echo "$0: no such wheel: $WHEEL" >&2; exit 2; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$PY" -m zipfile -e "$WHEEL" "$tmp"
cd "$tmp"
PYTHONPATH="$tmp${PYTHONPATH:+:$PYTHONPATH}" WANT="$WANT" "$PY" - <<'PY'
import os
import torch
import mmcv
from mmcv.ops import RoIAlign, get_compiling_cuda_version, nms
assert os.path.dirname(mmcv.__file__).startswith(os.getcwd()), mmcv.__file__
want = os.environ['WANT'] or torch.version.cuda
got = get_compiling_cuda_version()
print('mmcv', mmcv.__version__, 'from', os.path.dirname(mmcv.__file__), 'compiled CUDA', got)
assert got == want, f'compiled for CUDA {got}, expected {want}'
devices = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
for dev in devices:
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]], device=dev)
    _, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7], device=dev), 0.5)
    assert keep.cpu().tolist() == [0, 2], (dev, keep)
    feat = torch.arange(16., device=dev).view(1, 1, 4, 4)
    out = RoIAlign((2, 2), 1.0, 2)(feat, torch.tensor([[0., 0., 0., 4., 4.]], device=dev))
    assert torch.allclose(out.cpu().flatten(), torch.tensor([2.5, 4.5, 10.5, 12.5])), (dev, out)
    print('nms and RoIAlign correct on', dev)
PY
