# Sourced by the launch scripts: choose the Python interpreter and say which.
#   PYTHON set         -> that interpreter
#   $ROOT/.venv exists -> $ROOT/.venv/bin/python (made by `make env`)
#   otherwise          -> python3 on PATH
# Needs ROOT (the repository root). Sets PYTHON.
if [[ -n "${PYTHON:-}" ]]; then
  _why="PYTHON"
elif [[ -x "$ROOT/.venv/bin/python" ]]; then
  PYTHON="$ROOT/.venv/bin/python"
  _why="the repository's .venv"
else
  PYTHON="$(command -v python3 || true)"
  _why="python3 on PATH (no $ROOT/.venv: run 'make env' to create it)"
  [[ -n "$PYTHON" ]] || { echo "$(basename "$0"): no python3 on PATH and no $ROOT/.venv; run 'make env' or set PYTHON" >&2; exit 2; }
fi
command -v "$PYTHON" >/dev/null 2>&1 || { echo "$(basename "$0"): PYTHON=$PYTHON is not an executable" >&2; exit 2; }
echo "$(basename "$0"): using $PYTHON ($_why)" >&2
unset _why
