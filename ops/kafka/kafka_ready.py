#!/usr/bin/env python3
"""Wait until a Kafka broker on HOST:PORT really answers the Kafka protocol.

Standard library only (it runs before any Kafka client is installed), so it works
with any Python >= 3.8 given by ``$PYTHON`` or ``python3``.

A broker counts as ready when, on one TCP connection,

1. an ``ApiVersions`` v0 request gets error 0 and a list that includes the
   Metadata API (a Kafka broker, not just some open port), and
2. a ``Metadata`` request (highest of v4..v8 that the broker supports; no topics)
   lists at least one broker, and one of them advertises port ``PORT``.

Kafka 4.x binds the client port only once the broker is registered and unfenced,
so this normally succeeds on the first try after the port opens.

Usage::

    kafka_ready.py [--host 127.0.0.1] [--port 9092] [--timeout 120] [--pid PID]

``--pid``: fail fast when that process (the broker JVM) has exited.

Exit status: 0 ready; 1 not ready before the timeout; 2 the ``--pid`` process exited;
64 bad arguments.
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import sys
import time
from dataclasses import dataclass

API_METADATA = 3
API_VERSIONS = 18
CLIENT_ID = b"neikong-ready-probe"


class ProbeError(Exception):
    """The endpoint did not answer like a ready Kafka broker."""


@dataclass(frozen=True)
class Broker:
    node_id: int
    host: str
    port: int


@dataclass(frozen=True)
class ProbeResult:
    api_count: int
    metadata_version: int | None
    brokers: tuple[Broker, ...]
    cluster_id: str | None
    controller_id: int | None


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> tuple[int, ...]:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ProbeError("truncated response")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values

    def int16(self) -> int:
        return self.take(">h")[0]

    def int32(self) -> int:
        return self.take(">i")[0]

    def nullable_string(self) -> str | None:
        length = self.int16()
        if length < 0:
            return None
        if self.pos + length > len(self.data):
            raise ProbeError("truncated string")
        raw = self.data[self.pos : self.pos + length]
        self.pos += length
        return raw.decode("utf-8", "replace")


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ProbeError("broker closed the connection")
        buf += chunk
    return bytes(buf)


def _call(
    sock: socket.socket, api_key: int, version: int, correlation_id: int, body: bytes
) -> _Reader:
    # request header v1 (non-flexible): api_key, api_version, correlation_id, client_id
    header = struct.pack(">hhih", api_key, version, correlation_id, len(CLIENT_ID)) + CLIENT_ID
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
    if size <= 0 or size > 16 * 1024 * 1024:
        raise ProbeError(f"implausible response size {size}")
    reader = _Reader(_recv_exactly(sock, size))
    # response header v0: correlation_id
    if reader.int32() != correlation_id:
        raise ProbeError("correlation id mismatch")
    return reader


def probe(host: str, port: int, timeout: float = 3.0) -> ProbeResult:
    """One attempt; raises OSError or ProbeError when the broker is not ready."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)

        # ApiVersions v0: empty body; response: error_code, [api_key, min, max]
        reader = _call(sock, API_VERSIONS, 0, 1, b"")
        error = reader.int16()
        if error != 0:
            raise ProbeError(f"ApiVersions error code {error}")
        ranges: dict[int, tuple[int, int]] = {}
        for _ in range(reader.int32()):
            key, low, high = reader.take(">hhh")
            ranges[key] = (low, high)
        if API_METADATA not in ranges:
            raise ProbeError("ApiVersions answer lists no Metadata API: not a Kafka broker?")

        low, high = ranges[API_METADATA]
        version = min(high, 8)
        if version < max(low, 4):
            # No non-flexible Metadata version we know how to encode: ApiVersions must do.
            return ProbeResult(len(ranges), None, (), None, None)

        # Metadata v4..v8: topics=[] (none), allow_auto_topic_creation=false,
        # v8+: include_cluster/topic_authorized_operations=false
        body = struct.pack(">ib", 0, 0)
        if version >= 8:
            body += struct.pack(">bb", 0, 0)
        reader = _call(sock, API_METADATA, version, 2, body)
        reader.int32()  # throttle_time_ms
        brokers = []
        for _ in range(reader.int32()):
            node_id = reader.int32()
            broker_host = reader.nullable_string() or ""
            broker_port = reader.int32()
            reader.nullable_string()  # rack
            brokers.append(Broker(node_id, broker_host, broker_port))
        cluster_id = reader.nullable_string()
        controller_id = reader.int32()
    if not brokers:
        raise ProbeError("Metadata lists no broker yet")
    if not any(b.port == port for b in brokers):
        raise ProbeError(f"no broker advertises port {port}: {brokers}")
    return ProbeResult(len(ranges), version, tuple(brokers), cluster_id, controller_id)


def process_gone(pid: int) -> bool:
    """True when PID does not exist or is a zombie (exited, not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except FileNotFoundError:
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    state = stat.rpartition(")")[2].split()[:1]
    return state in (["Z"], ["X"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9092)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds (default 120)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between tries")
    parser.add_argument("--pid", type=int, default=None, help="fail fast if this process exits")
    parser.add_argument("-q", "--quiet", action="store_true")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 64

    deadline = time.monotonic() + args.timeout
    last_error = "no attempt made"
    while True:
        if args.pid is not None and process_gone(args.pid):
            print(f"kafka_ready: broker process {args.pid} exited", file=sys.stderr)
            return 2
        try:
            result = probe(args.host, args.port)
        except (OSError, ProbeError) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        else:
            if not args.quiet:
                detail = (
                    f"Metadata v{result.metadata_version}: brokers "
                    + ", ".join(f"{b.node_id}@{b.host}:{b.port}" for b in result.brokers)
                    + f", cluster id {result.cluster_id}"
                    if result.metadata_version is not None
                    else "ApiVersions only"
                )
                print(
                    f"kafka_ready: {args.host}:{args.port} answers "
                    f"({result.api_count} APIs; {detail})",
                    file=sys.stderr,
                )
            return 0
        if time.monotonic() >= deadline:
            print(
                f"kafka_ready: {args.host}:{args.port} not ready after {args.timeout:g}s "
                f"(last error: {last_error})",
                file=sys.stderr,
            )
            return 1
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
