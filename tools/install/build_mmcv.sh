#!/usr/bin/env bash
# Build the mmcv 2.1.0 wheel from the PyPI sdist into a folder (never installs it).
#
#   build_mmcv.sh PYTHON OPS OUT_DIR [ARCH_LIST] [CPATH]
#
# OPS is none (pure Python, no compiled ops), cpu or cuda. For cuda, ARCH_LIST is TORCH_CUDA_ARCH_LIST ("9.0" or "8.0;9.0")
# and CPATH the header folders of the CUDA toolkit and of the CUDA libraries shipped with
# torch (both as printed by tools/install/mmcv_plan.py); CUDA_HOME (the plan's MMCV_CUDA_HOME)
# names the toolkit root, which torch cannot infer from a wrapper script nvcc. torch 2.14's headers refuse C++17, so
# mmcv's hard-coded -std=c++17 is raised to c++20. MAX_JOBS (default 2) bounds the
# compile jobs.
set -euo pipefail
[[ $# -ge 3 ]] || { echo "usage: $0 PYTHON OPS OUT_DIR [ARCH_LIST] [CPATH]" >&2; exit 2; }
PY="$1"; OPS="$2"; OUT="$3"; ARCHS="${4:-}"; INC="${5:-}"
# the build runs inside the unpacked sdist: a relative PYTHON or OUT_DIR must not break it
# (absolute, but not resolved: a venv's python is a link to the base interpreter)
[[ "$PY" == */* ]] && PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"
mkdir -p "$OUT" && OUT="$(realpath "$OUT")"
MMCV_VERSION=2.1.0
die() { printf '[build_mmcv] ERROR: %s\n' "$*" >&2; exit 1; }
case "$OPS" in
  none|cpu) ;;
  cuda) [[ -n "$ARCHS" ]] || die "OPS=cuda needs ARCH_LIST (TORCH_CUDA_ARCH_LIST)"
        command -v nvcc >/dev/null || die "OPS=cuda needs nvcc on PATH (a CUDA toolkit matching torch.version.cuda)";;
  *) die "OPS must be cpu or cuda, not '$OPS'";;
esac
PIP=("$PY" -m pip --disable-pip-version-check)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"${PIP[@]}" download -q --no-deps --no-binary :all: --no-build-isolation "mmcv==${MMCV_VERSION}" -d "$work"
tar -xzf "$work"/mmcv-${MMCV_VERSION}.tar.gz -C "$work"
src="$work/mmcv-${MMCV_VERSION}"
sed -i 's/-std=c++17/-std=c++20/g' "$src/setup.py"
grep -q -- '-std=c++20' "$src/setup.py" || die "could not raise -std=c++17 to c++20 in mmcv's setup.py"
! grep -q -- '-std=c++17' "$src/setup.py" || die "mmcv's setup.py still has -std=c++17"
if [[ "$OPS" == none ]]; then
  ( cd "$src" && MMCV_WITH_OPS=0 "${PIP[@]}" wheel -q --no-build-isolation --no-deps -w "$work/dist" . )
elif [[ "$OPS" == cuda ]]; then
  home="${MMCV_CUDA_HOME:-${CUDA_HOME:-}}"
  if [[ -n "$home" ]]; then export CUDA_HOME="$home"; fi
  ( cd "$src" && FORCE_CUDA=1 MMCV_WITH_OPS=1 TORCH_CUDA_ARCH_LIST="$ARCHS" MAX_JOBS="${MAX_JOBS:-2}" \
      CPATH="$INC${CPATH:+:$CPATH}" CFLAGS=-g0 \
      "${PIP[@]}" wheel -q --no-build-isolation --no-deps -w "$work/dist" . )
else
  ( cd "$src" && CUDA_VISIBLE_DEVICES= FORCE_CUDA=0 MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}" CFLAGS=-g0 \
      "${PIP[@]}" wheel -q --no-build-isolation --no-deps -w "$work/dist" . )
fi
built="$(ls "$work"/dist/mmcv*.whl)"  # OPS=none: mmcv_lite-*.whl (the same mmcv package)
case "$OPS:$built" in
  none:*.whl|*:*cp311-cp311-linux_x86_64.whl) ;;
  *) die "mmcv build produced $built, not a cp311 linux_x86_64 wheel: the compiled ops are missing";;
esac
mkdir -p "$OUT"
cp "$built" "$OUT/"
echo "$OUT/$(basename "$built")"
