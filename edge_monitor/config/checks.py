"""What ``run`` will touch at start-up, checked in one place that ``check-config`` and ``run`` both call.

The YAML walker (:mod:`edge_monitor.config.loader`) checks types and ranges; this
module checks the world the values point at, without changing it:

- ``state_dir`` and the evidence folder (when evidence is on) are writable
  folders, or can be created as such (the nearest existing parent is a
  writable folder); never a regular file, never under ``/proc``, ``/sys`` or
  ``/dev``;
- the MQTT password file is readable and not empty;
- the TLS files (``mqtt.tls.ca_file``, ``cert_file``, ``key_file``) are
  readable PEM that Python's ``ssl`` module (the one paho uses) loads: a CA
  bundle that is not PEM would otherwise make the daemon retry the broker forever;
- ``http.token_env`` names a set, non-empty environment variable.

Each failure is one :class:`~edge_monitor.config.schema.ConfigError` line
(``FILE: key: what``), exit 78 in both commands.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from edge_monitor.config.mqtt import load_password
from edge_monitor.config.schema import Config, ConfigError, TlsConfig

__all__ = ["check_runtime", "check_writable_dir", "check_tls"]

#: Kernel file systems: writing state there is never what was meant.
_PSEUDO = (Path("/proc"), Path("/sys"), Path("/dev"))


def check_runtime(cfg: Config) -> None:
    """Raise :class:`ConfigError` for the first thing ``run`` would fail on at start-up (see the module docstring)."""
    source = str(cfg.source) if cfg.source else None
    check_writable_dir(cfg.state_dir, "state_dir", source)
    if cfg.evidence.enabled:
        check_writable_dir(cfg.evidence_dir, "evidence.dir" if cfg.evidence.dir is not None else "state_dir",
                           source)
    if cfg.mqtt.enabled:
        load_password(cfg.mqtt)  # MqttConfigError (a ConfigError) naming mqtt.password_file
        if cfg.mqtt.tls is not None:
            check_tls(cfg.mqtt.tls, source)
    if cfg.http is not None and cfg.http.token_env is not None:
        if not os.environ.get(cfg.http.token_env, "").strip():
            raise ConfigError(f"the environment variable {cfg.http.token_env} is unset or empty (it must hold "
                              "the access token)", file=source, key="http.token_env")


def check_writable_dir(path: Path, key: str, source: str | None = None) -> None:
    """``path`` is a writable folder, or the nearest existing parent is one (it will be created)."""
    def fail(what: str) -> ConfigError:
        return ConfigError(f"{path}: {what}", file=source, key=key)

    resolved = Path(os.path.realpath(path))
    if any(resolved == p or p in resolved.parents for p in _PSEUDO):
        raise fail(f"is under {next(p for p in _PSEUDO if resolved == p or p in resolved.parents)}, a kernel "
                   "file system, not a place for state")
    probe = resolved
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        kind = "a regular file" if probe.is_file() else "not a folder"
        raise fail(f"{probe} is {kind}" if probe != resolved else f"is {kind}, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise fail(f"{probe} is not writable by this user" if probe != resolved else "is not writable by this user")


def check_tls(tls: TlsConfig, source: str | None = None) -> None:
    """The TLS files load as PEM with the ``ssl`` module (what paho's ``tls_set`` does at connect)."""
    ctx = ssl.create_default_context()
    if tls.ca_file is not None:
        try:
            ctx.load_verify_locations(cafile=str(tls.ca_file))
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigError(f"{tls.ca_file}: not a readable PEM CA certificate ({_reason(exc)})", file=source,
                              key="mqtt.tls.ca_file") from None
    if tls.cert_file is not None:
        try:  # the certificate alone first, so that the line names the file at fault
            ssl.create_default_context().load_verify_locations(cafile=str(tls.cert_file))
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigError(f"{tls.cert_file}: not a readable PEM certificate ({_reason(exc)})", file=source,
                              key="mqtt.tls.cert_file") from None
        key_file = tls.key_file if tls.key_file is not None else tls.cert_file
        try:
            ctx.load_cert_chain(str(tls.cert_file), str(key_file), password=_no_password)
        except (ssl.SSLError, OSError, ValueError) as exc:
            key = "mqtt.tls.key_file" if tls.key_file is not None else "mqtt.tls.cert_file"
            raise ConfigError(f"{key_file}: not a readable PEM private key for {tls.cert_file.name} "
                              f"({_reason(exc)})", file=source, key=key) from None


def _no_password() -> str:
    # The daemon has no way to ask for a passphrase: an encrypted key fails here, not at connect.
    raise ValueError("the key is encrypted; the daemon cannot ask for its passphrase")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).strip() or type(exc).__name__
