"""The seam between the publisher and an MQTT client library.

The publisher's logic (back-off, CONNACK timeout, PUBACK bookkeeping, outbox
draining) talks to a :class:`Transport`, made per connection by a
:data:`TransportFactory`, in the way httpx lets a client take an injectable
transport. :class:`PahoTransport` is the real one (paho-mqtt 2.x); tests pass
a scripted fake and drive acknowledgements and failures without a broker and
without sleeping.

Callbacks go the other way through :class:`TransportEvents`. They run on the
thread that calls :meth:`Transport.loop` -- or inside :meth:`Transport.publish`:
paho reports a QoS 0 message as published before ``publish()`` returns its
message id, so receivers must accept an acknowledgement for an id they have
not seen yet (:class:`edge_monitor.publish.delivery.Delivery` does).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from edge_monitor.config.mqtt import TlsConfig

__all__ = ["ClientOptions", "PahoTransport", "Transport", "TransportEvents", "TransportFactory", "paho_factory"]


class TransportEvents(Protocol):
    """What a transport reports back (on the loop's thread, or inside ``publish()``)."""

    def on_connack(self, refused: str | None) -> None:
        """The broker answered CONNECT: ``None`` when accepted, else its reason for refusing."""

    def on_puback(self, mid: int, refused: str | None) -> None:
        """Message ``mid`` is done: PUBACK (QoS 1), PUBCOMP (QoS 2) or handed to the socket (QoS 0).

        ``refused`` is the broker's reason when it acknowledged but did not
        accept the message (MQTT 5 reason code >= 0x80, e.g. an ACL).
        """

    def on_message(self, topic: str, payload: bytes) -> None:
        """A message on a topic the transport subscribed to."""


class Transport(Protocol):
    """One MQTT connection attempt and, if the broker accepts it, its session."""

    def connect(self) -> None:
        """Open TCP (and TLS) and send CONNECT; does not wait for CONNACK.

        Raises ``OSError`` (refused, unreachable, DNS, timeout; ``ssl.SSLError``
        is one) or ``ValueError`` (a bad host name).
        """

    def loop(self, timeout_s: float) -> str | None:
        """Serve the network for up to ``timeout_s`` seconds (events fire in here).

        Returns ``None`` while the connection is usable, else why it ended.
        """

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> int | None:
        """Queue one message; its message id, or ``None`` when the connection is gone."""

    def subscribe(self, topic: str, qos: int) -> None:
        """Subscribe; messages arrive through :meth:`TransportEvents.on_message`."""

    def disconnect(self) -> None:
        """Send DISCONNECT (a clean goodbye: the broker does not publish the Last Will)."""

    def close(self) -> None:
        """Release the socket now, not when garbage collected (idempotent)."""


TransportFactory = Callable[[TransportEvents], Transport]
"""Makes one :class:`Transport` per connection attempt, reporting to the given events."""


@dataclass(frozen=True)
class ClientOptions:
    """Everything a connection needs besides the broker's answers. Times in seconds."""

    host: str
    port: int
    client_id: str
    protocol: str = "3.1.1"  # or "5"
    keepalive: int = 30
    connect_timeout_s: float = 10.0
    username: str | None = None
    password: str | None = None
    will_topic: str | None = None  # retained "offline" Last Will
    tls: TlsConfig | None = None  # CA, client certificate, insecure host name check
    max_inflight: int = 20  # paho's own window of unacknowledged QoS>0 messages


class PahoTransport:
    """:class:`Transport` over one ``paho.mqtt.client.Client`` (callback API 2, clean session)."""

    def __init__(self, opts: ClientOptions, events: TransportEvents) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self._mqtt = mqtt
        self.opts = opts
        v5 = opts.protocol == "5"
        # MQTT 5 asks for clean_start in connect() instead of clean_session (None: paho's default).
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=opts.client_id,
                             protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, clean_session=None if v5 else True)
        if opts.will_topic:
            client.will_set(opts.will_topic, "offline", qos=1, retain=True)
        if opts.username:
            client.username_pw_set(opts.username, opts.password)
        tls = opts.tls
        if tls is not None:
            client.tls_set(
                ca_certs=str(tls.ca_file) if tls.ca_file else None,
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
            if tls.insecure:
                client.tls_insecure_set(True)
        client.max_inflight_messages_set(opts.max_inflight)
        client.connect_timeout = opts.connect_timeout_s
        client.on_connect = lambda _c, _u, _f, rc, _p: events.on_connack(str(rc) if rc.is_failure else None)
        client.on_publish = lambda _c, _u, mid, rc, _p: events.on_puback(
            mid, str(rc) if getattr(rc, "is_failure", False) else None)
        client.on_message = lambda _c, _u, msg: events.on_message(msg.topic, bytes(msg.payload))
        self.client = client

    def connect(self) -> None:
        o = self.opts
        if o.protocol == "5":
            self.client.connect(o.host, o.port, o.keepalive, clean_start=True)
        else:
            self.client.connect(o.host, o.port, o.keepalive)

    def loop(self, timeout_s: float) -> str | None:
        rc = self.client.loop(timeout=timeout_s)
        return None if rc == self._mqtt.MQTT_ERR_SUCCESS else self._mqtt.error_string(rc)

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> int | None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        return info.mid if info.rc == self._mqtt.MQTT_ERR_SUCCESS else None

    def subscribe(self, topic: str, qos: int) -> None:
        self.client.subscribe(topic, qos=qos)

    def disconnect(self) -> None:
        self.client.disconnect()
        self.client.loop(timeout=0.1)  # lets DISCONNECT leave the socket buffer

    def close(self) -> None:
        sock = self.client.socket()
        if sock is not None:  # a refused or stalled connection: close it now, not at GC
            try:
                sock.close()
            except OSError:
                pass


def paho_factory(opts: ClientOptions) -> TransportFactory:
    """The real transport factory for these options."""
    return lambda events: PahoTransport(opts, events)
