#!/usr/bin/env bash
# The runtime on an emulated Raspberry Pi 4 (Cortex-A72, arm64), no Pi and no chroot needed:
#
#   1. sysroots: Debian's arm64 python3.11 (Bookworm = Raspberry Pi OS 12) and, when the
#      mirror has it, python3.13 (Trixie = Raspberry Pi OS 13), with their library closure,
#      fetched by a private apt configuration (the host's apt state is left alone) and unpacked
#      with `dpkg -x` into .ci/cache/arm64/<suite>/root, qemu-user's -L root;
#   2. the runtime's own dependencies (pyproject.toml's base list, pinned to the versions in the
#      x86 venv) as aarch64 wheels from PyPI, installed by the host's pip into a target folder;
#      the project itself comes from this checkout on PYTHONPATH;
#   3. checks that qemu's cortex-a72 model really refuses what a Pi 4 lacks (LSE atomics, dot
#      product: SIGILL) while its `max` model runs the same probe;
#   4. trains a tiny bundle on x86 (`edge-monitor-train synth` + `train`), then on arm64:
#      `edge-monitor --version`, `edge-monitor score --json` on the test WAVs (every field equal to
#      x86's within 1e-5 relative, printed side by side) and `simulate --fast --no-mqtt`.
#
# qemu-user shows the host's x86 /proc/cpuinfo, on which LiteRT's CPU detection segfaults at the
# first invoke: every emulated command runs in a private mount namespace (`unshare -m`) with
# .ci/pi4-cpuinfo bound over /proc/cpuinfo. Any emulated process killed by a signal (SIGILL on an
# instruction the A72 lacks, SIGSEGV) fails the script. Emulated timings mean nothing and are not
# printed; only the script's wall time is.
#
#   bash .ci/arm64.sh                    # PYTHON=.venv/bin/python (made by `make venv` if missing)
#   PYTHON=/path/to/venv/bin/python bash .ci/arm64.sh
#   ARM64_SUITES=bookworm bash .ci/arm64.sh   # only CPython 3.11
#
# Needs root (apt, unshare -m, mount), qemu-user-static, and the network on the first run;
# downloads are cached in .ci/cache/ (git-ignored; delete it to start afresh). Outside CI a
# missing prerequisite skips with the reason; under CI=true it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
CI=${CI:-}
CACHE=${ARM64_CACHE:-$REPO/.ci/cache/arm64}
SUITES=${ARM64_SUITES:-bookworm trixie}
CPUINFO=${ARM64_CPUINFO:-$REPO/.ci/pi4-cpuinfo}   # ARM64_CPUINFO=/proc/cpuinfo shows the crash it avoids
T0=$(date +%s)
ulimit -c 0   # a fault must fail the run, not leave qemu core files behind

say() { echo "arm64: $*"; }
die() { echo "arm64: FAIL: $*" >&2; exit 1; }
skip() {
    if [[ $CI == true ]]; then die "$* (required under CI=true)"; fi
    say "skipped: $*"; exit 0
}

[[ $(id -u) == 0 ]] || skip "needs root (apt-get, unshare -m and mount --bind over /proc/cpuinfo)"
command -v qemu-aarch64-static >/dev/null || skip "qemu-aarch64-static not found (apt-get install qemu-user-static)"
for tool in apt-get dpkg unshare mount; do
    command -v "$tool" >/dev/null || skip "$tool not found"
done

PY=${PYTHON:-.venv/bin/python}
if [[ ! -x $PY ]]; then
    [[ -z ${PYTHON:-} ]] || die "PYTHON=$PY is not an executable"
    say "no $PY yet: make venv"
    make -s venv
fi
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONUNBUFFERED=1

# --- sysroots -----------------------------------------------------------------------------------
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
MIRROR=${ARM64_MIRROR:-http://deb.debian.org/debian}
SECURITY=${ARM64_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# python3.X pulls its library closure (libc6, libpython3.X-stdlib, libexpat1, zlib1g, libffi8,
# libssl3, libsqlite3-0, libbz2-1.0, liblzma5, ...); libgcc-s1 and libstdc++6 are LiteRT's, scipy
# and numpy bring their own OpenBLAS/gfortran in the wheels; libportaudio2 lets sounddevice load.
EXTRA_DEBS=(libgcc-s1 libstdc++6 libportaudio2)

apt_opts() {  # private apt configuration for one suite, arm64 only
    local d=$1
    echo "-o APT::Architecture=arm64 -o APT::Architectures::=arm64 -o Dir::Etc::SourceList=$d/sources.list \
-o Dir::Etc::SourceParts=$d/none -o Dir::Etc::Preferences=$d/none -o Dir::Etc::PreferencesParts=$d/none \
-o Dir::State=$d/state -o Dir::State::status=$d/state/status -o Dir::Cache=$d/cache -o Debug::NoLocking=1 \
-o APT::Sandbox::User=root -o Acquire::Retries=3"
}

# sysroot SUITE PYVER: print the -L root of that suite's pythonPYVER, building it if needed;
# exit status 2 when the suite has no such package (the reason on stderr).
sysroot() {
    local suite=$1 pyver=$2
    local d=$CACHE/$suite
    local root=$d/root want="python$pyver ${EXTRA_DEBS[*]}"
    if [[ -x $root/usr/bin/python$pyver && $(cat "$d/root.stamp" 2>/dev/null) == "$want" ]]; then
        echo "$root"; return 0
    fi
    mkdir -p "$d/state/lists/partial" "$d/cache/archives/partial" "$d/none"
    : >"$d/state/status"
    {
        echo "deb [arch=arm64 signed-by=$KEYRING] $MIRROR $suite main"
        echo "deb [arch=arm64 signed-by=$KEYRING] $MIRROR $suite-updates main"
        echo "deb [arch=arm64 signed-by=$KEYRING] $SECURITY $suite-security main"
    } >"$d/sources.list"
    local opts
    read -ra opts <<<"$(apt_opts "$d")"
    apt-get "${opts[@]}" update -qq >"$d/update.log" 2>&1 || { cat "$d/update.log" >&2; return 1; }
    local cand
    cand=$(apt-cache "${opts[@]}" policy "python$pyver" | sed -n 's/^ *Candidate: //p')
    if [[ -z $cand || $cand == "(none)" ]]; then
        echo "Debian $suite (arm64) at $MIRROR has no python$pyver package" >&2; return 2
    fi
    # An empty dpkg status makes apt fetch the whole dependency closure.
    # shellcheck disable=SC2086  # $want is a word list
    apt-get "${opts[@]}" install --download-only -y -qq --no-install-recommends $want \
        >"$d/download.log" 2>&1 || { cat "$d/download.log" >&2; return 1; }
    rm -rf "$root.new"; mkdir -p "$root.new"
    local deb
    for deb in "$d"/cache/archives/*.deb; do dpkg -x "$deb" "$root.new"; done
    # Trixie's packages assume merged /usr (base-files makes /lib -> usr/lib); without dpkg's
    # maintainer scripts the links are ours to make, or qemu finds no /lib/ld-linux-aarch64.so.1.
    local top
    for top in bin lib sbin; do
        [[ -e $root.new/$top ]] || ln -s "usr/$top" "$root.new/$top"
    done
    rm -rf "$root"; mv "$root.new" "$root"
    echo "$want" >"$d/root.stamp"
    say "$suite: python$pyver $cand unpacked ($(find "$d/cache/archives" -name '*.deb' | wc -l) debs, $(du -sh "$root" | cut -f1))" >&2
    echo "$root"
}

# --- wheels -------------------------------------------------------------------------------------
# requirements: pyproject.toml's base dependencies, pinned to the versions of the x86 venv so
# both sides run the same NumPy, SciPy and LiteRT.
mapfile -t REQS < <("$PY" - <<'EOF'
import re, tomllib
from importlib.metadata import PackageNotFoundError, version
for spec in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]:
    name = re.match(r"[A-Za-z0-9_.-]+", spec).group(0)
    try:
        print(f"{name}=={version(name)}")
    except PackageNotFoundError:
        print(spec.split(";")[0].strip())
EOF
)
PLATFORMS=(--platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64
           --platform manylinux_2_27_aarch64 --platform manylinux_2_28_aarch64)

# site PYVER: print the folder holding the aarch64 wheels' packages for CPython PYVER.
site() {
    local pyver=$1 tag=cp${1/./} want
    local wheels=$CACHE/wheels-$tag dir=$CACHE/site-$tag
    want="${REQS[*]} ${PLATFORMS[*]}"
    if [[ -d $dir && $(cat "$dir.stamp" 2>/dev/null) == "$want" ]]; then
        echo "$dir"; return 0
    fi
    local pipopts=(--disable-pip-version-check --only-binary=:all: "${PLATFORMS[@]}"
                   --python-version "$pyver" --implementation cp --abi "$tag")
    "$PY" -m pip download --quiet "${pipopts[@]}" -d "$wheels" "${REQS[@]}" >&2
    rm -rf "$dir"
    "$PY" -m pip install --quiet "${pipopts[@]}" --no-index --find-links "$wheels" --target "$dir" "${REQS[@]}" >&2
    echo "$want" >"$dir.stamp"
    say "CPython $pyver: $(find "$wheels" -name '*.whl' | wc -l) aarch64 wheels installed into $dir" >&2
    echo "$dir"
}

# --- running arm64 code ---------------------------------------------------------------------------
# arm ROOT SITE CPU ARGS...: run ROOT's python with ARGS on qemu's CPU model CPU, in a private
# mount namespace where /proc/cpuinfo is a Pi 4's.
arm() {
    local root=$1 site=$2 cpu=$3; shift 3
    local py
    py=$(find "$root/usr/bin" -maxdepth 1 -name 'python3.[0-9]*' -type f | sort | tail -1)
    # shellcheck disable=SC2016  # expanded by the inner sh
    unshare -m -- sh -c 'mount --bind "$1" /proc/cpuinfo && shift && exec "$@"' sh "$CPUINFO" \
        env QEMU_CPU="$cpu" QEMU_LD_PREFIX="$root" PYTHONPATH="$REPO:$site" PYTHONNOUSERSITE=1 \
        qemu-aarch64-static "$py" "$@"
}

# check NAME CMD...: run CMD; a signal (exit status > 128) is a fault, any other failure a failure.
check() {
    local name=$1 rc=0; shift
    "$@" || rc=$?
    if (( rc > 128 )); then die "$name: killed by signal $((rc - 128)) ($(kill -l $((rc - 128)) 2>/dev/null || echo '?'))"; fi
    (( rc == 0 )) || die "$name: exit status $rc"
}

# --- x86: tiny dataset, bundle, reference scores ------------------------------------------------
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
say "x86: synthesising a tiny dataset and training a bundle ($PY)"
"$PY" -m trainer synth "$WORK/data" --seed 0 --machine-ids id_00 --train 6 --test-normal 2 \
    --test-anomaly 2 >"$WORK/synth.log" 2>&1 || { cat "$WORK/synth.log" >&2; die "x86 synth failed"; }
DATA=$WORK/data/slider
"$PY" -m trainer train "$DATA" --out "$WORK/bundle" --epochs 3 --seed 0 --quiet \
    --detectors autoencoder profile frames >"$WORK/train.log" 2>&1 \
    || { cat "$WORK/train.log" >&2; die "x86 training failed"; }
mapfile -t WAVS < <(find "$DATA/test" -name '*.wav' | sort)
"$PY" -m edge_monitor score "$WORK/bundle" "${WAVS[@]}" --json >"$WORK/x86.jsonl"
cat >"$WORK/config.yaml" <<EOF
device_id: arm64-ci
model: $WORK/bundle
state_dir: $WORK/state
EOF
# sim_summary STDERR STDOUT: windows, scored, alerts of a `simulate --log-format json` run.
sim_summary() {
    "$PY" - "$1" "$2" <<'PYEOF'
import json, sys
stopped = {}
for line in open(sys.argv[1]):
    try:
        rec = json.loads(line)
    except ValueError:
        continue
    if isinstance(rec, dict) and rec.get("event") == "stopped":
        stopped = rec
events = [line for line in open(sys.argv[2]) if line.startswith("{")]
print(f"{stopped.get('windows', '?')} windows, {stopped.get('scored', '?')} scored, "
      f"{stopped.get('alerts', '?')} alerts, {len(events)} events on stdout")
PYEOF
}
"$PY" -m edge_monitor simulate --config "$WORK/config.yaml" --fast --no-mqtt --log-format json "${WAVS[@]}" \
    >"$WORK/x86.sim.out" 2>"$WORK/x86.sim.err" || { cat "$WORK/x86.sim.err" >&2; die "x86 simulate failed"; }
x86_sim=$(sim_summary "$WORK/x86.sim.err" "$WORK/x86.sim.out")
rm -rf "$WORK/state"

# --- arm64 ----------------------------------------------------------------------------------------
ran=()
for suite in $SUITES; do
    case $suite in
        bookworm) pyver=3.11 ;;
        trixie) pyver=3.13 ;;
        *) die "unknown suite $suite (bookworm or trixie)" ;;
    esac
    rc=0; root=$(sysroot "$suite" "$pyver") || rc=$?
    if (( rc == 2 )); then
        if [[ $suite == bookworm ]]; then die "CPython 3.11 is required"; fi
        say "CPython $pyver (Debian $suite) skipped: see the line above"; continue
    fi
    (( rc == 0 )) || die "$suite: could not build the arm64 sysroot"
    sitedir=$(site "$pyver")
    label="arm64-py$pyver"
    say "== $label (Debian $suite, qemu -cpu cortex-a72, Pi 4 /proc/cpuinfo)"

    probe=$(check "$label HWCAP probe" arm "$root" "$sitedir" cortex-a72 .ci/arm64_probe.py hwcap)
    say "cortex-a72 HWCAP: $probe"
    for ext in lse dotprod; do
        rc=0; arm "$root" "$sitedir" max .ci/arm64_probe.py "$ext" >/dev/null || rc=$?
        (( rc == 0 )) || die "probe $ext does not run even on qemu's max CPU (status $rc)"
        rc=0; arm "$root" "$sitedir" cortex-a72 .ci/arm64_probe.py "$ext" >/dev/null 2>&1 || rc=$?
        (( rc == 128 + 4 )) || die "qemu's cortex-a72 ran a $ext instruction (status $rc, expected SIGILL):" \
            "it would not catch code a Pi 4 cannot run"
    done
    say "cortex-a72 refuses LSE atomics and dot product (SIGILL), qemu max runs them: faults are caught"

    check "$label edge-monitor --version" arm "$root" "$sitedir" cortex-a72 -m edge_monitor --version
    check "$label score" arm "$root" "$sitedir" cortex-a72 -m edge_monitor score "$WORK/bundle" "${WAVS[@]}" \
        --json >"$WORK/$label.jsonl"
    "$PY" .ci/arm64_compare.py "$WORK/x86.jsonl" "$WORK/$label.jsonl" --rtol 1e-5 --label "$label" \
        || die "$label scores differ from x86"
    rm -rf "$WORK/state"
    check "$label simulate" arm "$root" "$sitedir" cortex-a72 -m edge_monitor simulate --config "$WORK/config.yaml" \
        --fast --no-mqtt --log-format json "${WAVS[@]}" >"$WORK/$label.sim.out" 2>"$WORK/$label.sim.err" \
        || { cat "$WORK/$label.sim.err" >&2; exit 1; }
    summary=$(sim_summary "$WORK/$label.sim.err" "$WORK/$label.sim.out")
    say "$label simulate --fast --no-mqtt: exit 0; $summary (x86: $x86_sim)"
    [[ $summary == "$x86_sim" ]] || die "$label simulate differs from x86"
    ran+=("$label")
done

(( ${#ran[@]} > 0 )) || die "nothing ran"
say "passed on ${ran[*]} in $(( $(date +%s) - T0 )) s wall (emulated speed is not a Pi's)"
