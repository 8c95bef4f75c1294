#!/usr/bin/env bash
# Check `mim train mmmixmae` / `mim test mmmixmae` in a throwaway environment.
#
# openmim downgrades setuptools (to 60.2), so it never goes into the project's .venv.  This
# script makes a separate venv that sees .venv's packages through a .pth file, installs
# openmim and a regular (non-editable) copy of mmmixmae into it, and trains + tests the toy
# config for a few iterations through mim.  Usage: bash tools/install/check_mim.sh [WORKDIR]
#
# Why a regular install: mim 0.3.9 finds a package's tools and configs at
# <dist location>/<package>/.mim, and for a PEP 660 editable install the dist location is
# site-packages, where no mmmixmae/ folder exists.  `pip install .` ships the .mim folder.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="${1:-$(mktemp -d)}"
DATA="${MMMIXMAE_DATA:-$ROOT/../shared/data}/coco_voc3/JPEGImages"
SP="$("$ROOT/.venv/bin/python" -c 'import site; print(site.getsitepackages()[0])')"
BASE_PY="$("$ROOT/.venv/bin/python" -c 'import sys; print(sys._base_executable)')"

"$BASE_PY" -m venv "$WORK/mimenv"
echo "import site; site.addsitedir('$SP')" > "$WORK/mimenv/lib/python3.11/site-packages/zz_project.pth"
"$WORK/mimenv/bin/pip" install -q openmim
"$WORK/mimenv/bin/pip" install -q --no-deps "$ROOT"
# pip's build of a regular install turned the editable .mim symlinks into copies: restore them
"$ROOT/.venv/bin/pip" install -q --no-deps --no-build-isolation -e "$ROOT"
cd "$WORK"
opts=(--cfg-options train_cfg.max_iters=4 default_hooks.checkpoint.interval=2
      "train_dataloader.dataset.data_root=$DATA")
"$WORK/mimenv/bin/mim" train mmmixmae mixmae_swin-toy-w4_1xb4-20it_cpu.py --work-dir "$WORK/train" "${opts[@]}"
test -f "$WORK/train/iter_4.pth"
echo "mim train mmmixmae: OK ($WORK/train/iter_4.pth)"
