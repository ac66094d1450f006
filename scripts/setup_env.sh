#!/usr/bin/env bash
# Set up the project environment on a fresh machine; safe to run again (finished steps are skipped).
#
#   bash scripts/setup_env.sh
#
# 1. installs uv if it is missing;
# 2. `uv sync --inexact --frozen`: the locked Python packages into .venv (torch 2.14.1, mmengine,
#    mmdet, mmseg, ...). --inexact keeps mmcv, which is not in the lock file;
# 3. mmcv 2.1.0 WITH its compiled ops. No mmcv wheel exists for torch 2.14, so it is built once
#    per machine from the PyPI sdist (sha256-checked), patched in a temporary directory for
#    torch 2.14 (C++20, setuptools < 81), and the wheel is cached outside the work tree:
#       ${MTV_CACHE_DIR:-~/.cache/multitask_vision}/mmcv/<mmcv>-torch<torch>-<python>-<ops>/
#    Later runs, fresh clones and CI on the same machine install that wheel in seconds.
#
# CUDA ops are built when FORCE_CUDA=1 is set, or automatically when torch sees a GPU and nvcc is
# on PATH; TORCH_CUDA_ARCH_LIST narrows the architectures (e.g. "8.0;9.0") and the build time.
# MAX_JOBS caps the parallel compile jobs (default: all cores).
set -euo pipefail

MMCV_VERSION=2.1.0
MMCV_SDIST_URL="https://files.pythonhosted.org/packages/a7/19/f97f0fd4d432113a232e75f965335be6b7bb6557ae9faf8051e9a012cadd/mmcv-2.1.0.tar.gz"
MMCV_SDIST_SHA256=d387bcab66b467479b6660310e23746cfc79c6e57acf04094680adb499a5cd3f

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CACHE_DIR="${MTV_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/multitask_vision}"
PY="$ROOT/.venv/bin/python"

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# --- 1. uv --------------------------------------------------------------------------------------
if ! command -v uv >/dev/null 2>&1; then
    say "uv not found: installing it from PyPI (pip install --user uv)"
    python3 -m pip install --user --quiet uv || die "could not install uv; see https://docs.astral.sh/uv/"
    export PATH="$HOME/.local/bin:$PATH"
    command -v uv >/dev/null 2>&1 || die "uv installed but not on PATH; add ~/.local/bin to PATH"
fi

# --- 2. locked packages -------------------------------------------------------------------------
say "syncing .venv with uv.lock (the first run downloads torch, about 3 GB)"
uv sync --inexact --frozen --python 3.11

# --- 3. mmcv with compiled ops ------------------------------------------------------------------
mmcv_ok() {
    "$PY" - <<'EOF' >/dev/null 2>&1
import mmcv, mmcv._ext  # noqa: F401  (the compiled ops)
from mmcv.ops import batched_nms  # noqa: F401
assert mmcv.__version__ == "2.1.0", mmcv.__version__
EOF
}

if mmcv_ok; then
    say "mmcv $MMCV_VERSION with compiled ops is already installed in .venv: skipping"
    exit 0
fi

read -r TORCH_VERSION PY_TAG CUDA_VISIBLE < <("$PY" -c "
import sys, torch
print(torch.__version__, f'cp{sys.version_info[0]}{sys.version_info[1]}', int(torch.cuda.is_available()))")
if [[ "${FORCE_CUDA:-}" == "1" ]] || { [[ "$CUDA_VISIBLE" == "1" ]] && command -v nvcc >/dev/null 2>&1; }; then
    export FORCE_CUDA=1
    OPS="cuda${TORCH_CUDA_ARCH_LIST:+-$(echo "$TORCH_CUDA_ARCH_LIST" | tr -c '0-9A-Za-z.\n' '_')}"
else
    unset FORCE_CUDA
    OPS="cpu"
fi
KEY="mmcv${MMCV_VERSION}-torch${TORCH_VERSION}-${PY_TAG}-${OPS}"
WHEEL_DIR="$CACHE_DIR/mmcv/$KEY"
mkdir -p "$WHEEL_DIR"

install_cached_wheel() {
    local whl
    whl=$(ls "$WHEEL_DIR"/mmcv-*.whl 2>/dev/null | head -n 1 || true)
    [[ -n "$whl" ]] || return 1
    say "reusing cached mmcv wheel: $whl"
    uv pip install --python "$PY" --no-deps --reinstall "$whl"
    mmcv_ok || die "the cached wheel $whl installed but 'import mmcv._ext' fails; delete $WHEEL_DIR to rebuild it"
    say "mmcv $MMCV_VERSION with compiled $OPS ops installed"
}

# One build per machine even if two setups run at once (e.g. CI and a user): the second waits.
exec 9>"$WHEEL_DIR/.lock"
if command -v flock >/dev/null 2>&1; then
    flock -n 9 || { say "another process is building mmcv into $WHEEL_DIR: waiting for it"; flock 9; }
fi

install_cached_wheel && exit 0

JOBS="${MAX_JOBS:-$(nproc)}"
say "BUILDING mmcv $MMCV_VERSION with compiled $OPS ops from its sdist ($KEY, $JOBS jobs)."
say "This happens once per machine; measured on 2 cores: about 25 min for the CPU ops (see README)."

SDIST="$CACHE_DIR/downloads/mmcv-$MMCV_VERSION.tar.gz"
mkdir -p "$(dirname "$SDIST")"
if ! echo "$MMCV_SDIST_SHA256  $SDIST" | sha256sum -c --status 2>/dev/null; then
    say "downloading $MMCV_SDIST_URL"
    curl -fL --retry 3 -C - -o "$SDIST" "$MMCV_SDIST_URL" || {
        rm -f "$SDIST"; die "download of the mmcv sdist failed (is PyPI reachable?)"; }
    echo "$MMCV_SDIST_SHA256  $SDIST" | sha256sum -c --status || {
        rm -f "$SDIST"; die "checksum mismatch for $SDIST (expected $MMCV_SDIST_SHA256); removed it, run again"; }
fi

BUILD_DIR="$(mktemp -d "${TMPDIR:-/tmp}/mmcv-build.XXXXXX")"
trap 'rm -rf "$BUILD_DIR"' EXIT
tar -xzf "$SDIST" -C "$BUILD_DIR"
SRC="$BUILD_DIR/mmcv-$MMCV_VERSION"
# torch >= 2.10 headers require C++20 ("#error C++20 or later compatible compiler is required").
sed -i -e 's/-std=c++14/-std=c++20/g' -e 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
grep -q -- '-std=c++20' "$SRC/setup.py" || die "patching mmcv's setup.py for C++20 failed"

LOG="$BUILD_DIR/build.log"
say "compiling (full log: $LOG while it runs; progress below)"
START=$SECONDS
# Python's own flags (-O3 ...) with -g0 last: no debug info halves each source's compile time.
# (CFLAGS/CXXFLAGS from the environment REPLACE Python's flags in setuptools, hence the copy.)
OPT_FLAGS="$("$PY" -c "import sysconfig; print(sysconfig.get_config_var('CFLAGS') or '')") -g0"
set +e
(
    cd "$SRC"
    MMCV_WITH_OPS=1 MAX_JOBS="$JOBS" CFLAGS="$OPT_FLAGS" CXXFLAGS="$OPT_FLAGS" \
        "$PY" setup.py bdist_wheel -d "$BUILD_DIR/dist"
) >"$LOG" 2>&1 &
BUILD_PID=$!
# ninja prints "[k/n] ..." per compiled source: show those as progress.
last=""
while kill -0 "$BUILD_PID" 2>/dev/null; do
    sleep 10
    cur=$(grep -o '^\[[0-9]*/[0-9]*\]' "$LOG" | tail -n 1 || true)
    if [[ -n "$cur" && "$cur" != "$last" ]]; then
        say "  compiled $cur sources, $(( (SECONDS - START) / 60 )) min elapsed"
        last="$cur"
    fi
done
wait "$BUILD_PID"
rc=$?
set -e
if [[ $rc -ne 0 ]]; then
    tail -n 40 "$LOG" >&2
    cp "$LOG" "$CACHE_DIR/mmcv-build-failed.log"
    die "mmcv build failed (exit $rc); full log kept at $CACHE_DIR/mmcv-build-failed.log"
fi
whl=$(ls "$BUILD_DIR"/dist/mmcv-*.whl | head -n 1)
cp "$whl" "$WHEEL_DIR/.partial.whl"
mv "$WHEEL_DIR/.partial.whl" "$WHEEL_DIR/$(basename "$whl")"
say "built $(basename "$whl") in $(( (SECONDS - START) / 60 )) min $(( (SECONDS - START) % 60 )) s; cached in $WHEEL_DIR"
install_cached_wheel
