#!/usr/bin/env bash
# Create (or bring up to date) the project's virtual environment in .venv.
#
# Idempotent: a stamp file records the hash of this script and setup.py; when both
# are unchanged and the venv imports, nothing is done.  mmcv 2.1.0 is built once
# from the PyPI sdist (C++20) and the wheel is cached outside the repo in
# $MMMIXMAE_WHEEL_CACHE (default ~/.cache/mmmixmae/wheels), so later set-ups skip
# the compile.
#
# mmcv's compiled ops (tools/install/mmcv_plan.py decides, build_mmcv.sh builds):
#   MMMIXMAE_MMCV_OPS=auto (default)  CUDA ops when a CUDA device is visible, else CPU ops
#   MMMIXMAE_MMCV_OPS=cuda            CUDA ops (needs nvcc and a CUDA build of torch)
#   MMMIXMAE_MMCV_OPS=cpu             CPU ops only
#   TORCH_CUDA_ARCH_LIST              GPU architectures of the CUDA build (default: the
#                                     visible GPUs), e.g. "9.0" or "8.0;9.0"
# CPU wheels are cached as $CACHE/mmcv-*.whl, CUDA wheels in $CACHE/cuda<ver>-sm<arch>/.
# An installed torch 2.14.1 (any CUDA build, e.g. +cu126 for an older driver) is kept.
#
#   bash tools/install/setup_env.sh --plan   print the decisions and exit (installs nothing)
#   bash tools/install/setup_env.sh --demo   what `make demo` needs: pretraining runs on
#       mmcv's pure-Python parts, so mmcv is installed without compiled ops (seconds instead
#       of the compile) unless it is already there; `make test` adds the ops later
set -euo pipefail
PLAN_ONLY=0
DEMO=0
case "${1:-}" in
  --plan) PLAN_ONLY=1;;
  --demo) DEMO=1;;
  "") ;;
  *) echo "usage: $0 [--plan|--demo]" >&2; exit 2;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${MMMIXMAE_VENV:-$ROOT/.venv}"
PY_BOOT="${PYTHON:-python3}"
CACHE="${MMMIXMAE_WHEEL_CACHE:-$HOME/.cache/mmmixmae/wheels}"
MMCV_VERSION=2.1.0
STAMP="$VENV/.mmmixmae-stamp"
DEMO_STAMP="$VENV/.mmmixmae-demo-stamp"

log() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

want_stamp="$(cat "$ROOT/tools/install/setup_env.sh" "$ROOT/setup.py" "$ROOT/requirements"/*.txt 2>/dev/null | sha256sum | cut -c1-16)"
if [[ $PLAN_ONLY == 0 && -f "$STAMP" && "$(cat "$STAMP")" == "$want_stamp" ]] \
   && "$VENV/bin/python" -c 'import mmcv._ext, mmdet, mmseg, mmpretrain, mmmixmae, deepspeed' 2>/dev/null; then
  touch "$STAMP"
  log "environment up to date ($VENV)"
  exit 0
fi
if [[ $DEMO == 1 && -f "$DEMO_STAMP" && "$(cat "$DEMO_STAMP")" == "$want_stamp" ]] \
   && "$VENV/bin/python" -c 'import mmcv, mmpretrain, mmmixmae' 2>/dev/null; then
  log "demo environment up to date ($VENV)"
  exit 0
fi

"$PY_BOOT" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
  || die "Python 3.11 is required (found $("$PY_BOOT" --version 2>&1)); set PYTHON=/path/to/python3.11"

torch_ok() {  # torch 2.14.1 (any local build tag) and torchvision 0.29.1 already there
  "$VENV/bin/python" -c 'import torch, torchvision, sys
ok = torch.__version__.split("+")[0] == "2.14.1" and torchvision.__version__.split("+")[0] == "0.29.1"
sys.exit(0 if ok else 1)' 2>/dev/null
}

if [[ $PLAN_ONLY == 1 ]]; then
  [[ -x "$VENV/bin/python" ]] || die "--plan needs an existing $VENV (the plan reads its torch)"
  if torch_ok; then echo "TORCH='keep $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')'"
  else echo "TORCH='install torch==2.14.1 torchvision==0.29.1'"; fi
  "$VENV/bin/python" "$ROOT/tools/install/mmcv_plan.py" || exit $?
  echo "MMCV_CACHE='$CACHE'"
  exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating virtual environment $VENV"
  "$PY_BOOT" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
export PIP_PROGRESS_BAR=off

log "build tools (setuptools >=77.0.3,<81 is what mmcv's non-isolated build needs)"
"${PIP[@]}" install -q --upgrade "pip>=24" "setuptools>=77.0.3,<81" wheel ninja

if torch_ok; then
  log "keeping the installed torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)')"
else
  log "torch 2.14.1 + torchvision 0.29.1"
  "${PIP[@]}" install -q "torch==2.14.1" "torchvision==0.29.1"
fi

log "mmengine and build requirements of mmcv"
"${PIP[@]}" install -q -r "$ROOT/requirements/build.txt"

if [[ $DEMO == 1 ]]; then
  MMCV_OPS=none MMCV_ARCH_LIST='' MMCV_CPATH='' MMCV_CACHE_SUBDIR=no-ops MMCV_GPU_VISIBLE=0 TORCH_CUDA=''
else
  plan="$("$VENV/bin/python" "$ROOT/tools/install/mmcv_plan.py")" || die "mmcv build plan refused (see the line above)"
  eval "$plan"   # MMCV_OPS, MMCV_ARCH_LIST, MMCV_CPATH, MMCV_CACHE_SUBDIR, MMCV_GPU_VISIBLE, TORCH_CUDA
fi
log "mmcv ops: $MMCV_OPS${MMCV_ARCH_LIST:+ (CUDA $TORCH_CUDA, TORCH_CUDA_ARCH_LIST=$MMCV_ARCH_LIST)}"

mmcv_ok() {  # $1 = none | cpu | cuda: mmcv 2.1.0 is there (none) with working ops (cpu, cuda)
  MMCV_WANT="$1" MMCV_GPU="$MMCV_GPU_VISIBLE" "$VENV/bin/python" - <<'PY'
import os, sys
import torch, mmcv
assert mmcv.__version__ == '2.1.0', mmcv.__version__
if os.environ['MMCV_WANT'] == 'none':
    sys.exit(0)  # the demo needs only mmcv's pure-Python parts
import mmcv._ext  # noqa: F401  (the compiled ops must be there)
from mmcv.ops import nms, RoIAlign, get_compiling_cuda_version
assert mmcv.__version__ == '2.1.0', mmcv.__version__
compiled = get_compiling_cuda_version()
if os.environ['MMCV_WANT'] == 'cuda':
    assert compiled == torch.version.cuda, f'mmcv ops compiled for CUDA {compiled}, torch has {torch.version.cuda}'
devices = ['cpu'] + (['cuda'] if os.environ['MMCV_GPU'] == '1' and torch.cuda.is_available() and compiled != 'not available' else [])
for dev in devices:
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]], device=dev)
    scores = torch.tensor([0.9, 0.8, 0.7], device=dev)
    _, keep = nms(boxes, scores, 0.5)
    assert keep.cpu().tolist() == [0, 2], (dev, keep)
    feat = torch.arange(16., device=dev).view(1, 1, 4, 4)
    out = RoIAlign((2, 2), 1.0, 2)(feat, torch.tensor([[0., 0., 0., 4., 4.]], device=dev))
    # the 4 bin means of a 4x4 ramp: rows 0-1 / 2-3, columns 0-1 / 2-3
    assert torch.allclose(out.cpu().flatten(), torch.tensor([2.5, 4.5, 10.5, 12.5])), (dev, out)
    print('mmcv ops ok on', dev, '(compiled CUDA:', compiled + ')')
PY
}

if ! mmcv_ok "$MMCV_OPS" 2>/dev/null; then
  dest="$CACHE${MMCV_CACHE_SUBDIR:+/$MMCV_CACHE_SUBDIR}"
  mkdir -p "$dest"
  wheel="$(ls "$dest"/mmcv{,_lite}-${MMCV_VERSION}-*.whl 2>/dev/null | head -n1 || true)"
  if [[ -z "$wheel" ]]; then
    if [[ "$MMCV_OPS" == none ]]; then
      log "building mmcv ${MMCV_VERSION} without compiled ops (pure Python, seconds)"
    elif [[ "$MMCV_OPS" == cuda ]]; then
      log "building mmcv ${MMCV_VERSION} with CUDA ops for $MMCV_ARCH_LIST (about 17 minutes on 2 cores)"
    else
      log "building mmcv ${MMCV_VERSION} from the sdist with CPU ops (about 7 minutes on 2 cores)"
    fi
    wheel="$(MAX_JOBS="${MAX_JOBS:-2}" MMCV_CUDA_HOME="${MMCV_CUDA_HOME:-}" \
               bash "$ROOT/tools/install/build_mmcv.sh" "$VENV/bin/python" \
               "$MMCV_OPS" "$dest" "$MMCV_ARCH_LIST" "$MMCV_CPATH" | tail -n1)"
    log "cached $wheel"
  else
    log "installing cached $wheel"
  fi
  # the demo's mmcv-lite holds the same files: remove it before the build with ops
  [[ "$MMCV_OPS" == none ]] || "${PIP[@]}" uninstall -q -y mmcv-lite 2>/dev/null || true
  "${PIP[@]}" install -q --no-deps --force-reinstall "$wheel"
  mmcv_ok "$MMCV_OPS" || die "mmcv ${MMCV_VERSION} is installed but its $MMCV_OPS ops (mmcv._ext / nms / RoIAlign) do not work (delete $wheel and rerun)"
fi

log "OpenMMLab libraries and test tools"
"${PIP[@]}" install -q -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt"

if [[ $DEMO == 0 ]]; then
  # DeepSpeed (the ZeRO configs): PyPI has only its sdist.  Built once without its C++ ops
  # (DS_BUILD_OPS=0) and without build isolation (its setup.py imports the installed torch;
  # an isolated build spends minutes on its build environment), the wheel cached like mmcv's.
  DS_REQ="$(grep -v '^#' "$ROOT/requirements/deepspeed.txt" | grep -m1 .)"
  DS_VERSION="${DS_REQ#deepspeed==}"
  if ! "$VENV/bin/python" -c "import deepspeed, sys; sys.exit(deepspeed.__version__ != '$DS_VERSION')" 2>/dev/null; then
    ds_wheel="$(ls "$CACHE"/deepspeed-"$DS_VERSION"-*.whl 2>/dev/null | head -n1 || true)"
    if [[ -z "$ds_wheel" ]]; then
      log "building deepspeed $DS_VERSION from the sdist without C++ ops (seconds)"
      mkdir -p "$CACHE"
      DS_BUILD_OPS=0 "${PIP[@]}" wheel -q --no-deps --no-build-isolation -w "$CACHE" "$DS_REQ"
      ds_wheel="$(ls "$CACHE"/deepspeed-"$DS_VERSION"-*.whl | head -n1)"
    else
      log "installing cached $ds_wheel"
    fi
    "${PIP[@]}" install -q "$ds_wheel"
  fi
fi
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"

"$VENV/bin/python" - <<'PY'
import mmcv, mmengine, mmpretrain, mmdet, mmseg, torch, torchvision
print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'mmcv', mmcv.__version__,
      'mmengine', mmengine.__version__, 'mmpretrain', mmpretrain.__version__,
      'mmdet', mmdet.__version__, 'mmseg', mmseg.__version__)
import mmmixmae  # noqa: F401
try:
    import deepspeed
    print('deepspeed', deepspeed.__version__)
except ImportError:
    print('deepspeed not installed (setup_env.sh --demo skips it)')
PY
if [[ $DEMO == 1 ]]; then
  echo "$want_stamp" > "$DEMO_STAMP"
  log "demo environment ready: $VENV (mmcv without compiled ops; make test adds them)"
  exit 0
fi
echo "$want_stamp" > "$STAMP"
log "environment ready: $VENV"
