#!/usr/bin/env bash
# Install, upgrade or remove Edge Monitor on a Raspberry Pi (Raspberry Pi OS
# Bookworm, 64-bit) or a Debian 12/13 machine. Run from a checkout of the
# repository; see `deploy/install.sh --help` and docs/raspberry-pi.md.
#
# Idempotent: every step compares what is there with what it would write and
# reports `changed`, `ok` (already right), `kept` (yours, left alone) or `skip`.
# A second run with the same arguments reports no changes.
set -euo pipefail

NAME=edge-monitor
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
    cat <<EOF
Usage: sudo deploy/install.sh [OPTIONS]

Install the Edge Monitor runtime (no TensorFlow) as a systemd service:
  <prefix>/venv                      Python venv with the edge-monitor command
  /etc/edge-monitor/config.yaml      from deploy/config.example.yaml, only if absent
  /var/lib/edge-monitor/model/       the model bundle given with --model
  /etc/systemd/system/$NAME.service  installed and enabled
  system user '$NAME'                owns /var/lib/edge-monitor

Options:
  --model DIR          copy this model bundle (model.tflite + model.json) into
                       /var/lib/edge-monitor/model (replaces an older one; the
                       previous bundle is kept as model.previous)
  --device-id ID       device_id for a NEW config (default: the host name);
                       an existing config is never modified
  --prefix DIR         install the program here (default: /opt/edge-monitor)
  --root DIR           install into DIR as a file-system root (tests, checks):
                       no apt, no systemctl, nothing outside DIR changes. The
                       venv works at DIR/<prefix> only (venvs do not move)
  --python PY          interpreter for the venv (default: python3, >= 3.11)
  --system-site-packages
                       let the venv see the interpreter's packages (e.g. numpy
                       and scipy from apt: python3-numpy python3-scipy)
  --wheelhouse DIR     install from wheels in DIR only (offline installs)
  --pip-args "ARGS"    extra arguments for pip install (e.g. "--no-deps")
  --no-apt             do not install Debian packages (libportaudio2 ...)
  --no-start           enable the service but do not (re)start it
  --uninstall          stop and remove the service, the program and an
                       unedited config; keep /var/lib/edge-monitor (outbox,
                       evidence, model), an edited config and the user
  --purge              with --uninstall: remove those too
  -h, --help           this text

Exit status: 0 done, 1 a step failed, 2 bad arguments.
EOF
}

# --- arguments ----------------------------------------------------------------
PREFIX=/opt/$NAME
ROOT=/
MODEL=
DEVICE_ID=
PY=python3
SYSTEM_SITE=0
WHEELHOUSE=
PIP_ARGS=
APT=1
START=1
UNINSTALL=0
PURGE=0

need_value() { [[ $# -ge 2 && -n $2 ]] || { echo "install.sh: $1 needs a value" >&2; exit 2; }; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --model) need_value "$@"; MODEL=$2; shift 2 ;;
        --device-id) need_value "$@"; DEVICE_ID=$2; shift 2 ;;
        --prefix) need_value "$@"; PREFIX=$2; shift 2 ;;
        --root) need_value "$@"; ROOT=$2; shift 2 ;;
        --python) need_value "$@"; PY=$2; shift 2 ;;
        --system-site-packages) SYSTEM_SITE=1; shift ;;
        --wheelhouse) need_value "$@"; WHEELHOUSE=$2; shift 2 ;;
        --pip-args) [[ $# -ge 2 ]] || { echo "install.sh: --pip-args needs a value" >&2; exit 2; }
                    PIP_ARGS=$2; shift 2 ;;
        --no-apt) APT=0; shift ;;
        --no-start) START=0; shift ;;
        --uninstall) UNINSTALL=1; shift ;;
        --purge) UNINSTALL=1; PURGE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done

[[ $PREFIX == /* ]] || { echo "install.sh: --prefix must be an absolute path, got '$PREFIX'" >&2; exit 2; }
if [[ -n $DEVICE_ID && ! $DEVICE_ID =~ ^[A-Za-z0-9_-]{1,64}$ ]]; then
    echo "install.sh: --device-id must be 1-64 of A-Z a-z 0-9 _ -, got '$DEVICE_ID'" >&2; exit 2
fi
ROOT=${ROOT%/}
LIVE=0
if [[ -z $ROOT ]]; then
    LIVE=1                     # installing onto this machine
else
    mkdir -p "$ROOT"
    ROOT=$(cd "$ROOT" && pwd)
fi

# Paths as seen on the target (used inside the unit) and on this machine.
STATE=/var/lib/$NAME
CONFDIR=/etc/$NAME
UNIT_PATH=/etc/systemd/system/$NAME.service
WANTS_PATH=/etc/systemd/system/multi-user.target.wants/$NAME.service
R_PREFIX=$ROOT$PREFIX
R_STATE=$ROOT$STATE
R_CONFDIR=$ROOT$CONFDIR
R_UNIT=$ROOT$UNIT_PATH
R_WANTS=$ROOT$WANTS_PATH
INSTALL_STATE=$R_PREFIX/install-state

CHANGES=0
say()     { printf '  %-8s %s\n' "$1" "$2"; }
changed() { say changed "$1"; CHANGES=$((CHANGES + 1)); }
die()     { echo "install.sh: $*" >&2; exit 1; }

IS_ROOT=0; [[ $(id -u) -eq 0 ]] && IS_ROOT=1
if [[ $LIVE -eq 1 && $IS_ROOT -eq 0 ]]; then
    die "installing onto this machine needs root (sudo deploy/install.sh ...), or use --root DIR"
fi
SYSTEMD_RUNNING=0
[[ $LIVE -eq 1 && -d /run/systemd/system ]] && command -v systemctl >/dev/null && SYSTEMD_RUNNING=1

# --- helpers -------------------------------------------------------------------
file_sha() { sha256sum "$1" | cut -d' ' -f1; }

# Numeric uid/gid of the service user inside the target root ("" when absent).
lookup_id() {  # $1 = passwd|group
    local db=$ROOT/etc/$1
    [[ $LIVE -eq 1 ]] && { getent "$1" "$NAME" | cut -d: -f3; return 0; }
    [[ -f $db ]] && awk -F: -v n="$NAME" '$1 == n { print $3 }' "$db"
    return 0
}

# chown only where it can work: as root, to ids that exist in the target.
set_owner() {  # $1 = owner (root|svc), $2 = group (root|svc), $3... paths
    local u=$1 g=$2; shift 2
    [[ $IS_ROOT -eq 1 ]] || return 0
    local uid gid
    if [[ $u == svc ]]; then uid=$(lookup_id passwd); else uid=0; fi
    if [[ $g == svc ]]; then gid=$(lookup_id group); else gid=0; fi
    [[ -n $uid && -n $gid ]] || return 0
    chown "$uid:$gid" "$@"
}

owner_is() {  # $1 = path, $2 = want "uid:gid"; true when it matches or cannot be checked
    [[ $IS_ROOT -eq 1 ]] || return 0
    [[ "$(stat -c %u:%g "$1")" == "$2" ]]
}

# Install $1 as $2 with mode $3, owner $4 group $5; reports changed/ok.
install_file() {
    local src=$1 dst=$2 mode=$3 u=$4 g=$5 label=$6
    if [[ -f $dst ]] && cmp -s "$src" "$dst" && [[ $(stat -c %a "$dst") == "${mode#0}" ]]; then
        say ok "$label"
        return 0
    fi
    mkdir -p "$(dirname "$dst")"
    local tmp
    tmp=$(mktemp "$(dirname "$dst")/.install.XXXXXX")
    cp "$src" "$tmp"
    chmod "$mode" "$tmp"
    set_owner "$u" "$g" "$tmp"
    mv -f "$tmp" "$dst"
    changed "$label"
}

ensure_dir() {  # $1 path, $2 mode, $3 owner (root|svc), $4 group (root|svc), $5 label
    local path=$1 mode=$2 label=$5 uid=0 gid=0
    [[ $3 == svc ]] && uid=$(lookup_id passwd)
    [[ $4 == svc ]] && gid=$(lookup_id group)
    if [[ -d $path && $(stat -c %a "$path") == "${mode#0}" ]] \
        && { [[ -z $uid || -z $gid ]] || owner_is "$path" "$uid:$gid"; }; then
        say ok "$label"
        return 0
    fi
    mkdir -p "$path"
    chmod "$mode" "$path"
    set_owner "$3" "$4" "$path"
    changed "$label"
}

# Content hash of what pip would install: the package sources and build metadata.
source_hash() {
    (cd "$SRC" && find edge_monitor trainer pyproject.toml README.md -type f \
        ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 2>/dev/null \
        | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1
}

# --- uninstall -----------------------------------------------------------------
if [[ $UNINSTALL -eq 1 ]]; then
    echo "Removing $NAME from ${ROOT:-/} (prefix $PREFIX)"
    if [[ $SYSTEMD_RUNNING -eq 1 ]] && systemctl list-unit-files "$NAME.service" >/dev/null 2>&1; then
        if systemctl disable --now "$NAME.service" >/dev/null 2>&1; then changed "stopped and disabled $NAME.service"; fi
    fi
    [[ -L $R_WANTS ]] && { rm -f "$R_WANTS"; changed "removed $WANTS_PATH"; }
    [[ -f $R_UNIT ]] && { rm -f "$R_UNIT"; changed "removed $UNIT_PATH"; }
    [[ $SYSTEMD_RUNNING -eq 1 ]] && systemctl daemon-reload
    installed_config_sha=
    [[ -f $INSTALL_STATE ]] && installed_config_sha=$(sed -n 's/^config_sha256=//p' "$INSTALL_STATE")
    [[ -d $R_PREFIX ]] && { rm -rf "$R_PREFIX"; changed "removed $PREFIX"; }
    if [[ -f $R_CONFDIR/config.yaml ]]; then
        if [[ $PURGE -eq 1 ]] || [[ -n $installed_config_sha && $(file_sha "$R_CONFDIR/config.yaml") == "$installed_config_sha" ]]; then
            rm -f "$R_CONFDIR/config.yaml"; changed "removed $CONFDIR/config.yaml"
        else
            say kept "$CONFDIR/config.yaml (edited; --purge removes it)"
        fi
    fi
    if [[ -d $R_CONFDIR ]]; then
        if [[ $PURGE -eq 1 ]]; then rm -rf "$R_CONFDIR"; changed "removed $CONFDIR"
        elif rmdir "$R_CONFDIR" 2>/dev/null; then changed "removed $CONFDIR (empty)"
        else say kept "$CONFDIR (holds your files)"
        fi
    fi
    if [[ $PURGE -eq 1 ]]; then
        [[ -d $R_STATE ]] && { rm -rf "$R_STATE"; changed "removed $STATE (outbox, evidence, model)"; }
        if [[ -n $(lookup_id passwd) ]]; then
            if [[ $LIVE -eq 1 ]]; then
                userdel "$NAME" 2>/dev/null || true
                if getent group "$NAME" >/dev/null; then groupdel "$NAME" 2>/dev/null || true; fi
            else
                for db in passwd group shadow gshadow; do
                    [[ -f $ROOT/etc/$db ]] && sed -i "/^$NAME:/d" "$ROOT/etc/$db"
                done
            fi
            changed "removed user $NAME"
        fi
    else
        [[ -d $R_STATE ]] && say kept "$STATE (outbox, evidence, model; --purge removes it)"
        [[ -n $(lookup_id passwd) ]] && say kept "user $NAME (owns $STATE)"
    fi
    echo "Done: $CHANGES change(s)."
    exit 0
fi

# --- install -------------------------------------------------------------------
[[ -f $SRC/pyproject.toml && -d $SRC/edge_monitor ]] || die "$SRC is not an Edge Monitor checkout (no pyproject.toml)"
EXAMPLE=$SRC/deploy/config.example.yaml
UNIT_SRC=$SRC/systemd/$NAME.service
[[ -f $EXAMPLE ]] || die "$EXAMPLE is missing from the checkout"
[[ -f $UNIT_SRC ]] || die "$UNIT_SRC is missing from the checkout"
if [[ -n $MODEL ]]; then
    [[ -d $MODEL ]] || die "--model $MODEL: not a directory"
    for f in model.tflite model.json; do
        [[ -f $MODEL/$f ]] || die "--model $MODEL: $f is missing (a bundle holds model.tflite and model.json)"
    done
fi
[[ -z $WHEELHOUSE || -d $WHEELHOUSE ]] || die "--wheelhouse $WHEELHOUSE: not a directory"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
    || die "$PY is missing or older than Python 3.11 (use --python)"

echo "Installing $NAME into ${ROOT:-/} (prefix $PREFIX)"

# 1. Debian packages: PortAudio for sounddevice, venv support, ALSA tools (arecord -l).
APT_PACKAGES=(libportaudio2 python3-venv alsa-utils)
if [[ $APT -eq 0 ]]; then
    say skip "Debian packages (--no-apt)"
elif [[ $LIVE -eq 0 ]]; then
    say skip "Debian packages (--root mode: install ${APT_PACKAGES[*]} in the image yourself)"
elif ! command -v apt-get >/dev/null; then
    say skip "Debian packages (no apt-get: install PortAudio and python3-venv yourself)"
else
    missing=()
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        say ok "Debian packages (${APT_PACKAGES[*]})"
    else
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
            || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; } \
            || die "apt-get install ${missing[*]} failed"
        changed "Debian packages: installed ${missing[*]}"
    fi
fi

# 2. The system user (no login, home = state dir). sysusers is declarative and
#    works on an offline root as well; useradd is the fallback.
if [[ -n $(lookup_id passwd) ]]; then
    say ok "user $NAME"
elif [[ $IS_ROOT -eq 0 ]]; then
    say skip "user $NAME (not root: files stay owned by $(id -un))"
elif command -v systemd-sysusers >/dev/null; then
    sysroot=(); [[ $LIVE -eq 0 ]] && { mkdir -p "$ROOT/etc"; sysroot=(--root="$ROOT"); }
    out=$(systemd-sysusers "${sysroot[@]}" --inline "u $NAME - \"Edge Monitor daemon\" $STATE /usr/sbin/nologin" 2>&1) \
        || die "systemd-sysusers could not create user $NAME: $out"
    changed "user $NAME"
elif [[ $LIVE -eq 1 ]]; then
    useradd --system --user-group --home-dir "$STATE" --no-create-home --shell /usr/sbin/nologin "$NAME" \
        || die "useradd $NAME failed"
    changed "user $NAME"
else
    say skip "user $NAME (no systemd-sysusers to create it inside --root)"
fi

# 3. The venv with the runtime only: `pip install <checkout>` without [train].
PY_VERSION=$("$PY" -c 'import platform; print(platform.python_version())')
pip_cmd=(install --disable-pip-version-check --progress-bar off --quiet)
[[ -n $WHEELHOUSE ]] && pip_cmd+=(--no-index --find-links "$WHEELHOUSE")
# shellcheck disable=SC2206  # word splitting of --pip-args is intended
[[ -n $PIP_ARGS ]] && pip_cmd+=($PIP_ARGS)
WANT_VENV=$(printf '%s\n' "python=$PY_VERSION" "system_site=$SYSTEM_SITE" "wheelhouse=$WHEELHOUSE" \
    "pip_args=$PIP_ARGS" "source=$(source_hash)" | sha256sum | cut -d' ' -f1)
HAVE_VENV=
[[ -f $INSTALL_STATE ]] && HAVE_VENV=$(sed -n 's/^venv=//p' "$INSTALL_STATE")
VENV=$R_PREFIX/venv
if [[ $HAVE_VENV == "$WANT_VENV" ]] && "$VENV/bin/edge-monitor" --version >/dev/null 2>&1; then
    say ok "venv $PREFIX/venv ($("$VENV/bin/edge-monitor" --version))"
else
    mkdir -p "$R_PREFIX"
    chmod 0755 "$R_PREFIX"
    venv_python_version=
    [[ -x $VENV/bin/python ]] && venv_python_version=$("$VENV/bin/python" -c 'import platform; print(platform.python_version())' 2>/dev/null || true)
    want_site=false; [[ $SYSTEM_SITE -eq 1 ]] && want_site=true
    have_site=$(sed -n 's/^include-system-site-packages = //p' "$VENV/pyvenv.cfg" 2>/dev/null || true)
    if [[ $venv_python_version != "$PY_VERSION" || $have_site != "$want_site" ]]; then
        rm -rf "$VENV"     # absent, broken, another Python or site setting: start afresh
        venv_args=(); [[ $SYSTEM_SITE -eq 1 ]] && venv_args+=(--system-site-packages)
        "$PY" -m venv "${venv_args[@]}" "$VENV" || die "$PY -m venv $VENV failed (Debian: apt install python3-venv)"
    fi
    # Build from a clean copy: an in-tree build would write into the checkout and
    # could package stale files from an old build/ folder.
    build_src=$(mktemp -d)
    (cd "$SRC" && cp -R pyproject.toml edge_monitor trainer "$build_src/" \
        && for f in README.md LICENSE setup.cfg MANIFEST.in; do [[ ! -e $f ]] || cp "$f" "$build_src/"; done)
    find "$build_src" -name __pycache__ -prune -exec rm -rf {} +
    [[ -e $build_src/README.md ]] || : >"$build_src/README.md"
    log=$(mktemp)
    # A local directory is always rebuilt and reinstalled by pip: this is the upgrade.
    if ! "$VENV/bin/python" -m pip "${pip_cmd[@]}" "$build_src" >"$log" 2>&1; then
        cat "$log" >&2; rm -rf "$log" "$build_src"
        die "pip install into $VENV failed (see above); config, state and model are untouched"
    fi
    rm -rf "$log" "$build_src"
    version=$("$VENV/bin/edge-monitor" --version 2>&1) || die "$VENV/bin/edge-monitor --version fails: $version"
    changed "venv $PREFIX/venv ($version)"
fi
install_file "$SRC/docs/raspberry-pi.md" "$R_PREFIX/share/doc/raspberry-pi.md" 0644 root root \
    "$PREFIX/share/doc/raspberry-pi.md"

# 4. State directory (systemd's StateDirectory= re-asserts ownership at start).
ensure_dir "$R_STATE" 0750 svc svc "$STATE"

# 5. Config: installed once, never overwritten (an upgrade keeps yours).
ensure_dir "$R_CONFDIR" 0750 root svc "$CONFDIR"
CONFIG=$R_CONFDIR/config.yaml
# Checksum of the config as this script wrote it: --uninstall removes it only if unedited.
CONFIG_SHA=
[[ -f $INSTALL_STATE ]] && CONFIG_SHA=$(sed -n 's/^config_sha256=//p' "$INSTALL_STATE")
if [[ -f $CONFIG ]]; then
    say kept "$CONFDIR/config.yaml"
else
    id=${DEVICE_ID:-$(hostname -s 2>/dev/null | tr -c 'A-Za-z0-9_\n-' '-' | cut -c1-64)}
    [[ -n $id ]] || id=edge-monitor
    tmp=$(mktemp "$R_CONFDIR/.config.XXXXXX")
    sed -e "s|^device_id:.*|device_id: $id|" "$EXAMPLE" >"$tmp"
    chmod 0640 "$tmp"
    set_owner root svc "$tmp"
    mv "$tmp" "$CONFIG"
    CONFIG_SHA=$(file_sha "$CONFIG")
    changed "$CONFDIR/config.yaml (from deploy/config.example.yaml, device_id: $id)"
fi

# 6. Model bundle: replaced only when its files differ; the old one is kept.
MODEL_DIR=$R_STATE/model
if [[ -n $MODEL ]]; then
    bundle_sum() { (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum; }
    if [[ -d $MODEL_DIR ]] && [[ "$(bundle_sum "$MODEL")" == "$(bundle_sum "$MODEL_DIR")" ]]; then
        say ok "$STATE/model ($(file_sha "$MODEL_DIR/model.tflite" | cut -c1-12))"
    else
        staging=$R_STATE/.model.new
        rm -rf "$staging"
        cp -R "$MODEL" "$staging"
        find "$staging" -type d -exec chmod 0750 {} +
        find "$staging" -type f -exec chmod 0640 {} +
        set_owner svc svc -R "$staging"
        note=
        if [[ -d $MODEL_DIR ]]; then
            rm -rf "$R_STATE/model.previous"
            mv "$MODEL_DIR" "$R_STATE/model.previous"
            note="; the previous bundle is in model.previous"
        fi
        mv "$staging" "$MODEL_DIR"
        changed "$STATE/model ($(file_sha "$MODEL_DIR/model.tflite" | cut -c1-12)$note)"
    fi
elif [[ -d $MODEL_DIR ]]; then
    say kept "$STATE/model"
else
    say skip "$STATE/model (no --model given: the service exits 78 until a bundle is there)"
fi

# 7. The unit, pointing at this prefix, and its enablement.
unit_tmp=$(mktemp)
trap 'rm -f "$unit_tmp"' EXIT
sed -e "s|/opt/$NAME/|$PREFIX/|g" "$UNIT_SRC" >"$unit_tmp"
unit_before=$CHANGES
install_file "$unit_tmp" "$R_UNIT" 0644 root root "$UNIT_PATH"
unit_changed=$((CHANGES - unit_before))
if [[ $SYSTEMD_RUNNING -eq 1 ]]; then
    [[ $unit_changed -gt 0 ]] && systemctl daemon-reload
    if systemctl is-enabled --quiet "$NAME.service" 2>/dev/null; then
        say ok "$NAME.service enabled"
    else
        systemctl enable --quiet "$NAME.service"; changed "$NAME.service enabled"
    fi
else
    # What `systemctl enable` does, done by hand: no running systemd needed.
    if [[ -L $R_WANTS && $(readlink "$R_WANTS") == "$UNIT_PATH" ]]; then
        say ok "$NAME.service enabled (multi-user.target.wants)"
    else
        mkdir -p "$(dirname "$R_WANTS")"
        ln -sfn "$UNIT_PATH" "$R_WANTS"
        changed "$NAME.service enabled (multi-user.target.wants)"
    fi
fi

# 8. Record what was installed (for the next run and for --uninstall).
state_tmp=$(mktemp)
printf '%s\n' "venv=$WANT_VENV" "config_sha256=$CONFIG_SHA" >"$state_tmp"
if [[ -f $INSTALL_STATE ]] && cmp -s "$state_tmp" "$INSTALL_STATE"; then
    rm -f "$state_tmp"
else
    mv "$state_tmp" "$INSTALL_STATE"; chmod 0644 "$INSTALL_STATE"
fi

# 9. (Re)start only on a live system, only when something changed.
if [[ $SYSTEMD_RUNNING -eq 1 ]]; then
    if [[ $START -eq 0 ]]; then
        say skip "start (--no-start)"
    elif [[ ! -f $R_STATE/model/model.json ]]; then
        say skip "start (no model bundle yet: rerun with --model DIR)"
    elif [[ $CHANGES -gt 0 ]] || ! systemctl is-active --quiet "$NAME.service"; then
        if systemctl restart "$NAME.service"; then changed "$NAME.service (re)started"
        else say failed "$NAME.service did not start: journalctl -u $NAME -o cat -n 20"; START_FAILED=1
        fi
    else
        say ok "$NAME.service running"
    fi
else
    say skip "start (systemd is not running here or --root mode)"
fi

if [[ $CHANGES -eq 0 ]]; then echo "Done: no changes."; else echo "Done: $CHANGES change(s)."; fi
[[ ${START_FAILED:-0} -eq 0 ]] || exit 1
