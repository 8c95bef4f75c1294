#!/usr/bin/env bash
# Create (or bring up to date) the project's virtual environment in .venv.
#
# Idempotent: a stamp file records the hash of this script and setup.py; when both
# are unchanged and the venv imports, nothing is done.  mmcv 2.1.0 is built once
# from the PyPI sdist (C++20, CPU ops) and the wheel is cached outside the repo in
# $MMMIXMAE_WHEEL_CACHE (default ~/.cache/mmmixmae/wheels), so later set-ups skip
# the ~7 minute compile.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${MMMIXMAE_VENV:-$ROOT/.venv}"
PY_BOOT="${PYTHON:-python3}"
CACHE="${MMMIXMAE_WHEEL_CACHE:-$HOME/.cache/mmmixmae/wheels}"
MMCV_VERSION=2.1.0
STAMP="$VENV/.mmmixmae-stamp"

log() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

want_stamp="$(cat "$ROOT/tools/install/setup_env.sh" "$ROOT/setup.py" "$ROOT/requirements"/*.txt 2>/dev/null | sha256sum | cut -c1-16)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want_stamp" ]] \
   && "$VENV/bin/python" -c 'import mmcv._ext, mmdet, mmseg, mmpretrain, mmmixmae' 2>/dev/null; then
  touch "$STAMP"
  log "environment up to date ($VENV)"
  exit 0
fi

"$PY_BOOT" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
  || die "Python 3.11 is required (found $("$PY_BOOT" --version 2>&1)); set PYTHON=/path/to/python3.11"

if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating virtual environment $VENV"
  "$PY_BOOT" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
export PIP_PROGRESS_BAR=off

log "build tools (setuptools >=77.0.3,<81 is what mmcv's non-isolated build needs)"
"${PIP[@]}" install -q --upgrade "pip>=24" "setuptools>=77.0.3,<81" wheel ninja

log "torch 2.14.1 + torchvision 0.29.1"
"${PIP[@]}" install -q "torch==2.14.1" "torchvision==0.29.1"

log "mmengine and build requirements of mmcv"
"${PIP[@]}" install -q -r "$ROOT/requirements/build.txt"

mmcv_ok() {
  CUDA_VISIBLE_DEVICES= "$VENV/bin/python" - <<'PY'
import torch, mmcv, mmcv._ext  # noqa: F401  (the compiled ops must be there)
from mmcv.ops import nms, RoIAlign
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
scores = torch.tensor([0.9, 0.8, 0.7])
_, keep = nms(boxes, scores, 0.5)
assert keep.tolist() == [0, 2], keep
feat = torch.arange(16.).view(1, 1, 4, 4)
out = RoIAlign((2, 2), 1.0, 2)(feat, torch.tensor([[0., 0., 0., 4., 4.]]))
assert out.shape == (1, 1, 2, 2) and torch.isfinite(out).all(), out
assert mmcv.__version__ == '2.1.0', mmcv.__version__
PY
}

if ! mmcv_ok 2>/dev/null; then
  mkdir -p "$CACHE"
  wheel="$(ls "$CACHE"/mmcv-${MMCV_VERSION}-cp311-cp311-linux_x86_64.whl 2>/dev/null | head -n1 || true)"
  if [[ -z "$wheel" ]]; then
    log "building mmcv ${MMCV_VERSION} from the sdist with CPU ops (about 7 minutes on 2 cores)"
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    "${PIP[@]}" download -q --no-deps --no-binary :all: --no-build-isolation "mmcv==${MMCV_VERSION}" -d "$work"
    tar -xzf "$work"/mmcv-${MMCV_VERSION}.tar.gz -C "$work"
    src="$work/mmcv-${MMCV_VERSION}"
    # torch 2.14 headers refuse C++17; mmcv hard-codes the flag after CFLAGS.
    sed -i 's/-std=c++17/-std=c++20/g' "$src/setup.py"
    grep -q -- '-std=c++20' "$src/setup.py" || die "could not raise -std=c++17 to c++20 in mmcv's setup.py"
    ! grep -q -- '-std=c++17' "$src/setup.py" || die "mmcv's setup.py still has -std=c++17"
    ( cd "$src" && CUDA_VISIBLE_DEVICES= FORCE_CUDA=0 MMCV_WITH_OPS=1 MAX_JOBS=2 CFLAGS=-g0 \
        "${PIP[@]}" wheel -q --no-build-isolation --no-deps -w "$work/dist" . )
    built="$(ls "$work"/dist/mmcv-*.whl)"
    case "$built" in
      *cp311-cp311-linux_x86_64.whl) ;;
      *) die "mmcv build produced $built, not a cp311 linux_x86_64 wheel: the compiled ops are missing";;
    esac
    cp "$built" "$CACHE/"
    wheel="$CACHE/$(basename "$built")"
    log "cached $wheel"
  else
    log "installing cached $wheel"
  fi
  "${PIP[@]}" install -q --no-deps --force-reinstall "$wheel"
  mmcv_ok || die "mmcv ${MMCV_VERSION} is installed but mmcv._ext / nms / RoIAlign do not work (delete $wheel and rerun)"
fi

log "OpenMMLab libraries and test tools"
"${PIP[@]}" install -q -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"

"$VENV/bin/python" - <<'PY'
import mmcv, mmengine, mmpretrain, mmdet, mmseg, torch, torchvision
print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'mmcv', mmcv.__version__,
      'mmengine', mmengine.__version__, 'mmpretrain', mmpretrain.__version__,
      'mmdet', mmdet.__version__, 'mmseg', mmseg.__version__)
import mmmixmae  # noqa: F401
PY
echo "$want_stamp" > "$STAMP"
log "environment ready: $VENV"
