"""deploy/install.sh into a temporary root: files, permissions, the venv's
`edge-monitor --version`, idempotency, upgrade and uninstall.

The installer runs for real: it creates a venv and pip-installs the runtime
from a copy of this checkout (with its dependencies, from the pip cache or
the index). Nothing outside the temporary root is touched (`--root`).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require, require_binary

REPO = Path(__file__).resolve().parents[1]
PREFIX = "/opt/edge-monitor"
IS_ROOT = os.geteuid() == 0
def copy_source(dest: Path) -> Path:
    """What the installer needs from a checkout, without .venv/.git/caches."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in ["edge_monitor", "trainer", "systemd", "deploy", "docs"]:
        shutil.copytree(REPO / name, dest / name, ignore=ignore)
    for name in ["pyproject.toml", "README.md", "LICENSE"]:
        if (REPO / name).exists():
            shutil.copy2(REPO / name, dest / name)
    if not (dest / "README.md").exists():
        (dest / "README.md").write_text("# Edge Monitor\n")  # pyproject's readme= must exist to build
    assert (dest / "deploy" / "config.example.yaml").is_file()
    return dest


def make_bundle(path: Path, tag: str) -> Path:
    """A bundle-shaped folder: the installer copies it, the daemon validates it."""
    path.mkdir(parents=True)
    (path / "model.tflite").write_bytes(b"TFL3" + tag.encode() * 64)
    (path / "model.json").write_text('{"schema_version": 1, "tag": "%s"}\n' % tag)
    return path


def run_install(src: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", str(src / "deploy" / "install.sh"), *args],
                          capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, f"install.sh {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def tree_state(root: Path) -> dict[str, tuple]:
    """Every path under root -> (mode, uid, gid, sha256 or link target)."""
    state = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            content = os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            content = None
        state[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, content)
    return state


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def passwd_ids(root: Path, name: str = "edge-monitor") -> tuple[int, int] | None:
    passwd = root / "etc" / "passwd"
    if not passwd.exists():
        return None
    for line in passwd.read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return int(fields[2]), int(fields[3])
    return None


def venv_version(root: Path) -> str:
    out = subprocess.run([str(root / PREFIX.lstrip("/") / "venv/bin/edge-monitor"), "--version"],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": ""})
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    return copy_source(tmp_path_factory.mktemp("src"))


def test_install_is_idempotent_upgrades_in_place_and_uninstalls(src, tmp_path):
    require_binary("bash")
    root = tmp_path / "root"
    bundle_a = make_bundle(tmp_path / "bundle-a", "a")
    args = ["--root", str(root), "--no-apt", "--device-id", "rail-07"]

    # --- a failed pip install stops before config and unit --------------------
    # --pip-args reach pip; an empty wheelhouse has nothing to build or install from.
    empty = tmp_path / "wheels"
    empty.mkdir()
    failed = run_install(src, *args, "--wheelhouse", str(empty), "--pip-args", "--no-cache-dir", check=False)
    assert failed.returncode == 1, failed.stdout
    assert "pip install into" in failed.stderr and "failed" in failed.stderr
    assert not (root / "etc/edge-monitor/config.yaml").exists()
    assert not (root / "etc/systemd/system/edge-monitor.service").exists()
    assert not (root / "opt/edge-monitor/install-state").exists()

    # --- first install (recovers from the failed attempt above) ----------------
    first = run_install(src, *args, "--model", str(bundle_a))
    assert re.search(r"Done: \d+ change\(s\)\.", first.stdout), first.stdout
    prefix = root / PREFIX.lstrip("/")
    state = root / "var/lib/edge-monitor"
    confdir = root / "etc/edge-monitor"
    config = confdir / "config.yaml"
    unit = root / "etc/systemd/system/edge-monitor.service"
    wants = root / "etc/systemd/system/multi-user.target.wants/edge-monitor.service"

    version = re.search(r'__version__ = "([^"]+)"', (src / "edge_monitor/__init__.py").read_text()).group(1)
    assert venv_version(root) == f"edge-monitor {version}"
    venv_python = str(prefix / "venv/bin/python")
    # The runtime only: no TensorFlow in the Pi's venv; the package comes from the venv itself.
    probe = subprocess.run(
        [venv_python, "-c", "import importlib.util as u, edge_monitor; "
         "print(u.find_spec('tensorflow') is None, edge_monitor.__file__)"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env={**os.environ, "PYTHONPATH": ""})
    no_tf, module_file = probe.stdout.split()
    assert no_tf == "True"
    assert module_file.startswith(str(prefix / "venv"))

    # Files and permissions.
    example = (src / "deploy/config.example.yaml").read_text()
    assert config.read_text() == re.sub(r"(?m)^device_id:.*$", "device_id: rail-07", example)
    assert mode(config) == 0o640
    assert mode(confdir) == 0o750
    assert mode(state) == 0o750
    assert (state / "model/model.tflite").read_bytes() == (bundle_a / "model.tflite").read_bytes()
    assert mode(state / "model/model.json") == 0o640
    assert mode(unit) == 0o644
    assert unit.read_text() == (src / "systemd/edge-monitor.service").read_text()
    assert os.readlink(wants) == "/etc/systemd/system/edge-monitor.service"
    if IS_ROOT:
        ids = passwd_ids(root)
        assert ids is not None, "the service user was not created in the root's /etc/passwd"
        uid, gid = ids
        assert (state.stat().st_uid, state.stat().st_gid) == (uid, gid)
        assert (state / "model/model.tflite").stat().st_uid == uid
        assert (config.stat().st_uid, config.stat().st_gid) == (0, gid)

    # The installed unit verifies against the installed (real) ExecStart binary.
    analyze = shutil.which("systemd-analyze")
    stock = Path("/usr/lib/systemd/system")
    if analyze and (stock / "sysinit.target").exists():
        # systemd-analyze resolves paths inside --root: lend the root the stock units for a moment.
        lent = root / "usr/lib/systemd/system"
        shutil.copytree(stock, lent, symlinks=True)
        try:
            proc = subprocess.run([analyze, "verify", f"--root={root}", "--man=no", str(unit)],
                                  capture_output=True, text=True, timeout=120)
        finally:
            shutil.rmtree(root / "usr")
        assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    else:
        require(False, "systemd-analyze and systemd's stock units are needed to verify the installed unit")

    # The checkout is only read: pip builds from a clean copy.
    assert not (src / "build").exists() and not list(src.glob("*.egg-info"))

    # --- second run: nothing changes ----------------------------------------
    before = tree_state(root)
    second = run_install(src, *args, "--model", str(bundle_a))
    assert "Done: no changes." in second.stdout, second.stdout
    assert "changed" not in second.stdout
    assert tree_state(root) == before

    # --- upgrade: new code and a new model; config and state survive ---------
    config.write_text(config.read_text() + "# edited on site\n")
    (state / "outbox.sqlite").write_bytes(b"pending alerts")
    (state / "evidence").mkdir()
    (state / "evidence/2026-01-01T00-00-00.wav").write_bytes(b"RIFF....")
    init = src / "edge_monitor/__init__.py"
    init.write_text(init.read_text().replace(f'__version__ = "{version}"', '__version__ = "99.0.0"'))
    try:
        bundle_b = make_bundle(tmp_path / "bundle-b", "b")
        upgrade = run_install(src, *args, "--model", str(bundle_b))
    finally:
        init.write_text(init.read_text().replace('__version__ = "99.0.0"', f'__version__ = "{version}"'))
    assert venv_version(root) == "edge-monitor 99.0.0"
    assert re.search(r"changed +venv .*99\.0\.0", upgrade.stdout), upgrade.stdout
    assert "kept     /etc/edge-monitor/config.yaml" in upgrade.stdout
    assert config.read_text().endswith("# edited on site\n")
    assert (state / "outbox.sqlite").read_bytes() == b"pending alerts"
    assert (state / "evidence/2026-01-01T00-00-00.wav").exists()
    assert (state / "model/model.json").read_text() == (bundle_b / "model.json").read_text()
    assert (state / "model.previous/model.json").read_text() == (bundle_a / "model.json").read_text()
    # Upgrade without --model keeps the installed bundle.
    again = run_install(src, *args)
    assert "kept     /var/lib/edge-monitor/model" in again.stdout
    assert (state / "model/model.json").read_text() == (bundle_b / "model.json").read_text()

    # --- uninstall keeps state and the edited config; purge removes all -----
    removed = run_install(src, "--root", str(root), "--uninstall")
    assert not prefix.exists() and not unit.exists() and not wants.is_symlink()
    assert config.exists(), "an edited config must survive --uninstall"
    assert (state / "outbox.sqlite").exists() and (state / "model/model.tflite").exists()
    assert "kept" in removed.stdout
    run_install(src, "--root", str(root), "--purge")
    assert not config.exists() and not confdir.exists() and not state.exists()
    assert passwd_ids(root) is None


@pytest.mark.parametrize("edited", [False, True])
def test_uninstall_removes_the_config_only_when_unedited(src, tmp_path, edited):
    """The installer records the checksum of the config it wrote (in
    <prefix>/install-state); --uninstall removes that file only if unchanged.
    The root is laid out by hand here: the full round trip (with an edited
    config) runs in the test above, this covers the other branch cheaply."""
    root = tmp_path / "root"
    config = root / "etc/edge-monitor/config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("device_id: rail-08\n")
    sha = hashlib.sha256(config.read_bytes()).hexdigest()
    (root / "opt/edge-monitor").mkdir(parents=True)
    (root / "opt/edge-monitor/install-state").write_text(f"venv=x\nconfig_sha256={sha}\n")
    (root / "var/lib/edge-monitor").mkdir(parents=True)
    if edited:
        config.write_text("device_id: rail-08\n# tuned on site\n")
    out = run_install(src, "--root", str(root), "--uninstall").stdout
    assert config.exists() == edited, out
    assert not (root / "opt/edge-monitor").exists()
    assert (root / "var/lib/edge-monitor").exists(), "state is kept without --purge"


@pytest.mark.parametrize(
    ("args", "rc", "message"),
    [
        (["--bogus"], 2, "unknown option '--bogus'"),
        (["--device-id", "bad id!"], 2, "--device-id must be"),
        (["--prefix", "relative/path"], 2, "--prefix must be an absolute path"),
        (["--model", "/nonexistent/bundle"], 1, "--model /nonexistent/bundle: not a directory"),
        (["--python", "/nonexistent/python3"], 1, "/nonexistent/python3 is missing or older than Python 3.11"),
        (["--wheelhouse", "/nonexistent/wheels"], 1, "--wheelhouse /nonexistent/wheels: not a directory"),
    ],
)
def test_bad_arguments_give_one_clear_line_and_install_nothing(src, tmp_path, args, rc, message):
    root = tmp_path / "root"
    proc = run_install(src, "--root", str(root), "--no-apt", *args, check=False)
    assert proc.returncode == rc, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert not (root / "opt").exists() and not (root / "etc/edge-monitor").exists()


def test_model_without_tflite_is_refused(src, tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "model.json").write_text("{}")
    proc = run_install(src, "--root", str(tmp_path / "root"), "--no-apt", "--model", str(bundle), check=False)
    assert proc.returncode == 1
    assert "model.tflite is missing" in proc.stderr


def test_help_lists_every_option(src):
    out = run_install(src, "--help").stdout
    for option in ["--model", "--device-id", "--prefix", "--root", "--python", "--system-site-packages",
                   "--wheelhouse", "--pip-args", "--no-apt", "--no-start", "--uninstall", "--purge"]:
        assert option in out


# --- the Ansible playbook -------------------------------------------------------------
ANSIBLE_DIR = REPO / "deploy" / "ansible"
ROLE = ANSIBLE_DIR / "roles" / "edge_monitor"
# Versions the playbook is linted with (a new ansible-lint may add rules).
ANSIBLE_PACKAGES = ["ansible-core>=2.17,<2.20", "ansible-lint>=25,<27"]
ANSIBLE_VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edge-monitor-tests" / "ansible-venv"


@pytest.fixture(scope="module")
def ansible_bin() -> Path:
    """A throwaway venv with ansible-core and ansible-lint (reused between local runs)."""
    bin_dir = ANSIBLE_VENV / "bin"
    stamp = ANSIBLE_VENV / ".packages"
    if not (stamp.exists() and stamp.read_text() == repr(ANSIBLE_PACKAGES)
            and (bin_dir / "ansible-playbook").exists()):
        shutil.rmtree(ANSIBLE_VENV, ignore_errors=True)
        ANSIBLE_VENV.parent.mkdir(parents=True, exist_ok=True)
        made = subprocess.run(["python3", "-m", "venv", str(ANSIBLE_VENV)], capture_output=True, text=True)
        require(made.returncode == 0, f"python3 -m venv failed: {made.stderr.strip()}")
        pip = subprocess.run([str(bin_dir / "pip"), "install", "--quiet", "--disable-pip-version-check",
                              *ANSIBLE_PACKAGES], capture_output=True, text=True, timeout=900)
        require(pip.returncode == 0, f"pip could not install {ANSIBLE_PACKAGES}: {pip.stderr.strip()[-500:]}")
        stamp.write_text(repr(ANSIBLE_PACKAGES))
    return bin_dir


def ansible_env(bin_dir: Path, tmp: Path) -> dict[str, str]:
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "ANSIBLE_HOME": str(tmp / "ansible-home"),
            "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-tmp"), "ANSIBLE_NOCOLOR": "1", "NO_COLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0", "PY_COLORS": "0"}


def test_playbook_syntax_check(ansible_bin, tmp_path):
    proc = subprocess.run([str(ansible_bin / "ansible-playbook"), "-i", "inventory.example.yml",
                           "site.yml", "--syntax-check"], cwd=ANSIBLE_DIR, capture_output=True,
                          text=True, timeout=300, env=ansible_env(ansible_bin, tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "playbook: site.yml" in proc.stdout


def test_ansible_lint_production_profile(ansible_bin, tmp_path):
    proc = subprocess.run([str(ansible_bin / "ansible-lint"), "--profile", "production", "--offline",
                           "site.yml", "roles/edge_monitor", "inventory.example.yml", "host_vars"],
                          cwd=ANSIBLE_DIR, capture_output=True, text=True, timeout=600,
                          env=ansible_env(ansible_bin, tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Passed" in proc.stdout + proc.stderr


def render_config(ansible_bin: Path, tmp: Path, host_vars: Path, **extra: str) -> Path:
    """Render the role's config template the way the role does, for one host's vars."""
    dest = tmp / "config.yaml"
    cmd = [str(ansible_bin / "ansible"), "localhost", "-i", "localhost,", "-c", "local",
           "-e", f"ansible_python_interpreter={ansible_bin / 'python'}",
           "-e", f"@{ROLE / 'defaults/main.yml'}", "-e", f"@{host_vars}",
           "-e", "edge_monitor_ca_path=''"]
    for key, value in extra.items():
        cmd += ["-e", f"{key}={value}"]
    cmd += ["-m", "ansible.builtin.template", "-a", f"src={ROLE / 'templates/config.yaml.j2'} dest={dest}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ansible_env(ansible_bin, tmp))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dest


@pytest.mark.parametrize("host", ["rail-01.plant.example", "rail-02.plant.example"])
def test_templated_config_is_valid_for_the_daemon(ansible_bin, tmp_path, host):
    """The role's template, with the example host_vars, passes the daemon's own config loader."""
    import yaml

    from edge_monitor.config.loader import load_config

    host_vars = ANSIBLE_DIR / "host_vars" / f"{host}.yml"
    path = render_config(ansible_bin, tmp_path, host_vars, edge_monitor_mqtt_host="mqtt.plant.example")
    cfg = load_config(path)
    expected = yaml.safe_load(host_vars.read_text())
    assert cfg.device_id == expected["edge_monitor_device_id"]
    assert cfg.audio.device == expected["edge_monitor_audio_device"]
    assert cfg.decision.threshold == expected.get("edge_monitor_threshold")
    assert str(cfg.model) == "/var/lib/edge-monitor/model"
    assert cfg.mqtt.host == "mqtt.plant.example"
    assert cfg.mqtt.password_file is None and cfg.mqtt.tls is None


def test_templated_config_points_at_password_and_ca(ansible_bin, tmp_path):
    """With a password and a CA the config names the files the role installs."""
    import yaml

    path = render_config(ansible_bin, tmp_path, ANSIBLE_DIR / "host_vars/rail-01.plant.example.yml",
                         edge_monitor_mqtt_password="s3cret", edge_monitor_ca_path="/ctl/ca.crt",
                         edge_monitor_mqtt_username="hall2-rail-01")
    mqtt = yaml.safe_load(path.read_text())["mqtt"]
    assert mqtt["password_file"] == "/etc/edge-monitor/mqtt-password"
    assert mqtt["tls"] == {"ca_file": "/etc/edge-monitor/ca.crt"}
    assert mqtt["username"] == "hall2-rail-01"
    assert "s3cret" not in path.read_text()


# --- fleet broker examples against a real mosquitto -----------------------------------
BROKER_EXAMPLES = ANSIBLE_DIR / "broker"


class Client:
    """A paho client logged in as ``user`` that records what it receives."""

    def __init__(self, port: int, user: str, password: str, *subscribe: str) -> None:
        import threading

        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.received: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{user}",
                                  protocol=mqtt.MQTTv311)
        self.client.username_pw_set(user, password)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        if subscribe:
            self.client.subscribe([(t, 1) for t in subscribe])
            assert self.subscribed.wait(10), f"{user}: no SUBACK"

    def _on_message(self, _client, _userdata, msg) -> None:  # noqa: ANN001
        with self.lock:
            self.received.append((msg.topic, msg.payload))

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def topics_until(self, marker: str, timeout: float = 10.0) -> list[str]:
        """Topics received up to and including ``marker`` (published last by the same sender)."""
        import time

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                topics = [t for t, _ in self.received]
            if marker in topics:
                return topics
            time.sleep(0.02)
        raise AssertionError(f"{marker} never arrived; got {topics}")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_mosquitto_acl_example_confines_each_device_to_its_topics(tmp_path):
    from tests.mqtt_helpers import Mosquitto

    mosquitto = require_binary("mosquitto")
    passwd_tool = require_binary("mosquitto_passwd")
    users = ["rail-1", "rail-2", "homeassistant", "ops"]
    pw_file = tmp_path / "passwd"
    for i, user in enumerate(users):
        subprocess.run([passwd_tool, *([] if i else ["-c"]), "-b", str(pw_file), user, f"pw-{user}"],
                       check=True, capture_output=True, timeout=30)
    pw_file.chmod(0o600)
    acl = tmp_path / "acl"
    shutil.copy(BROKER_EXAMPLES / "mosquitto-acl.example", acl)
    acl.chmod(0o600)
    with Mosquitto(tmp_path, mosquitto, anonymous=False,
                   extra=[f"password_file {pw_file}", f"acl_file {acl}"]) as broker:
        ha = Client(broker.port, "homeassistant", "pw-homeassistant", "edge-monitor/#", "homeassistant/#")
        rail1 = Client(broker.port, "rail-1", "pw-rail-1", "homeassistant/status", "edge-monitor/rail-2/#")
        rail2 = Client(broker.port, "rail-2", "pw-rail-2")
        ops = Client(broker.port, "ops", "pw-ops")
        try:
            # What a device does: its own topics and its discovery configs.
            rail1.publish("edge-monitor/rail-1/availability", "online", retain=True)
            rail1.publish("homeassistant/binary_sensor/rail-1/anomaly/config", "{}", retain=True)
            rail1.publish("homeassistant/sensor/rail-1/score/config", "{}", retain=True)
            # What it must not do: speak for another device or for Home Assistant.
            rail1.publish("edge-monitor/rail-2/alert", '{"forged": true}')
            rail1.publish("homeassistant/sensor/rail-2/score/config", "{}", retain=True)
            rail1.publish("homeassistant/status", "offline")
            rail1.publish("edge-monitor/rail-1/alert", '{"event": "start"}')  # marker: last
            ops.publish("edge-monitor/rail-1/alert", '{"from": "ops"}')
            ops.publish("edge-monitor/ops/marker", "last")  # every user has its own subtree
            rail2.publish("edge-monitor/rail-2/alert", '{"event": "start"}')

            ha.topics_until("edge-monitor/ops/marker")
            ha.topics_until("edge-monitor/rail-2/alert")
            got = ha.topics_until("edge-monitor/rail-1/alert")
            assert "edge-monitor/rail-1/availability" in got
            assert "homeassistant/binary_sensor/rail-1/anomaly/config" in got
            assert "homeassistant/sensor/rail-1/score/config" in got
            assert "homeassistant/sensor/rail-2/score/config" not in got
            assert "homeassistant/status" not in got
            payloads = [p for t, p in ha.received if t.endswith("/alert")]
            assert b'{"forged": true}' not in payloads and b'{"from": "ops"}' not in payloads

            # Home Assistant's birth message reaches the devices; other devices' topics do not.
            ha.publish("homeassistant/status", "online")
            ha.publish("edge-monitor/rail-1/state", "normal")  # HA may write; rail-1 reads own topics only
            topics = rail1.topics_until("homeassistant/status")
            assert all(not t.startswith("edge-monitor/rail-2/") for t in topics)
        finally:
            for c in (ha, rail1, rail2, ops):
                c.close()


def test_mosquitto_bridge_example_forwards_a_hall_to_the_central_broker(tmp_path):
    """Devices talk to the hall broker; the example bridge carries their topics to
    the central broker, logged in as bridge-hall2 under the example ACL."""
    from tests.mqtt_helpers import Mosquitto

    mosquitto = require_binary("mosquitto")
    passwd_tool = require_binary("mosquitto_passwd")
    pw_file = tmp_path / "passwd"
    subprocess.run([passwd_tool, "-c", "-b", str(pw_file), "bridge-hall2", "pw-bridge"], check=True,
                   capture_output=True, timeout=30)
    subprocess.run([passwd_tool, "-b", str(pw_file), "homeassistant", "pw-ha"], check=True,
                   capture_output=True, timeout=30)
    acl = tmp_path / "acl"
    shutil.copy(BROKER_EXAMPLES / "mosquitto-acl.example", acl)
    with Mosquitto(tmp_path / "central", mosquitto, anonymous=False,
                   extra=[f"password_file {pw_file}", f"acl_file {acl}"]) as central:
        bridge = []
        for line in (BROKER_EXAMPLES / "mosquitto-bridge.conf.example").read_text().splitlines():
            if line.startswith("address "):
                line = f"address 127.0.0.1:{central.port}"
            elif line.startswith("bridge_cafile"):
                continue  # plain TCP in the test
            elif line.startswith("remote_password"):
                line = "remote_password pw-bridge"
            bridge.append(line)
        ha = Client(central.port, "homeassistant", "pw-ha", "edge-monitor/#", "homeassistant/#")
        try:
            with Mosquitto(tmp_path / "hall", mosquitto, extra=bridge) as hall:
                import paho.mqtt.client as mqtt
                from paho.mqtt.enums import CallbackAPIVersion

                device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="rail-1")
                device.connect("127.0.0.1", hall.port)
                device.loop_start()
                try:
                    # The bridge connects in the background: publish until it carries messages.
                    import time

                    end = time.monotonic() + 20
                    while time.monotonic() < end and not any(t == "edge-monitor/rail-1/alert" for t, _ in ha.received):
                        device.publish("edge-monitor/rail-1/alert", '{"event": "start"}', qos=1).wait_for_publish(5)
                        time.sleep(0.2)
                    device.publish("homeassistant/sensor/rail-1/score/config", "{}", qos=1, retain=True).wait_for_publish(5)
                    got = ha.topics_until("homeassistant/sensor/rail-1/score/config")
                    assert "edge-monitor/rail-1/alert" in got, hall.log_text()
                finally:
                    device.loop_stop()
                    device.disconnect()
        finally:
            ha.close()


def test_install_sh_passes_shellcheck():
    shellcheck = require_binary("shellcheck")
    proc = subprocess.run([shellcheck, str(REPO / "deploy/install.sh")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout
