"""HTTP face of the witness (c2sp.org/tlog-witness `add-checkpoint`) and the client the log uses.

Server: `POST <prefix>/add-checkpoint` with the body

    old <size>\\n
    <base64 proof hash>\\n          (zero to 63 lines)
    \\n
    <signed checkpoint note>

Responses, as tlog-witness prescribes: 200 with the cosignature line(s) (`— <name> <base64>`),
400 malformed request or old size above the checkpoint size, 403 no valid signature by the
log's trusted key, 404 unknown origin, 409 `text/x.tlog.size` with the last cosigned size (also
for a same-size checkpoint with another root), 422 consistency proof does not verify. A state
file that cannot be written gives 500 and no cosignature. `Witness.add_checkpoint` serialises
every check-and-update under its lock, so concurrent requests cannot roll the state back.

Client: `submit_checkpoint` translates each status back into the `ledger.witness` exception of
the same meaning; network failures and answers outside the protocol raise `WitnessUnavailable`.
The cosignatures it returns are NOT verified: callers MUST check them with
`ledger.note.verify_cosignature` against the witness keys they trust.
"""

from __future__ import annotations

import base64
import binascii
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ledger.note import NoteError, NoteSignature, parse_signature_lines
from ledger.witness import (
    MAX_PROOF_HASHES,
    Witness,
    WitnessBadProof,
    WitnessBadSignature,
    WitnessConflict,
    WitnessError,
    WitnessMalformed,
    WitnessUnavailable,
    WitnessUnknownLog,
)
from ledger.witness_state import WitnessStateError

__all__ = [
    "ADD_CHECKPOINT_PATH",
    "MAX_REQUEST_BYTES",
    "WitnessHTTPServer",
    "encode_add_checkpoint_request",
    "make_server",
    "parse_add_checkpoint_request",
    "submit_checkpoint",
]

ADD_CHECKPOINT_PATH = "/add-checkpoint"
MAX_REQUEST_BYTES = 1 << 20
"""Largest request body accepted (a checkpoint with many signatures fits easily)."""
SIZE_CONTENT_TYPE = "text/x.tlog.size"

_OLD_RE = re.compile(r"old (0|[1-9][0-9]*)", re.ASCII)
_SIZE_RE = re.compile(r"0|[1-9][0-9]*", re.ASCII)
_STATUS_ERRORS: dict[int, type[WitnessError]] = {
    400: WitnessMalformed,
    403: WitnessBadSignature,
    404: WitnessUnknownLog,
    422: WitnessBadProof,
}


# --- the request body -------------------------------------------------------------------------


def encode_add_checkpoint_request(
    old_size: int, proof: Sequence[bytes], signed_checkpoint: bytes
) -> bytes:
    """The add-checkpoint request body: old size line, proof lines, blank line, checkpoint."""
    lines = [f"old {old_size}", *(base64.b64encode(h).decode() for h in proof)]
    return "".join(line + "\n" for line in lines).encode() + b"\n" + signed_checkpoint


def parse_add_checkpoint_request(body: bytes) -> tuple[int, list[bytes], bytes]:
    """Split a request body into (old size, proof hashes, signed checkpoint).

    Strict: a canonical decimal old size, canonical base64 proof lines, at most 63 of them.
    Raises `WitnessMalformed`.
    """
    split = body.find(b"\n\n")
    if split < 0:
        raise WitnessMalformed("request has no empty line before the checkpoint")
    try:
        head = body[:split].decode("ascii").split("\n")
    except UnicodeDecodeError:
        raise WitnessMalformed("old size and proof lines must be ASCII") from None
    match = _OLD_RE.fullmatch(head[0])
    if not match:
        raise WitnessMalformed("the first line must be 'old <size>'")
    if len(head) - 1 > MAX_PROOF_HASHES:
        raise WitnessMalformed(f"{len(head) - 1} proof lines exceed {MAX_PROOF_HASHES}")
    proof = []
    for line in head[1:]:
        try:
            raw = base64.b64decode(line, validate=True)
        except binascii.Error:
            raise WitnessMalformed("a proof line is not base64") from None
        if base64.b64encode(raw).decode() != line:
            raise WitnessMalformed("a proof line is not canonical base64")
        proof.append(raw)
    return int(match.group(1)), proof, body[split + 2 :]


# --- server -----------------------------------------------------------------------------------


class WitnessHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server holding one `Witness`."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], witness: Witness, *, quiet: bool = False) -> None:
        self.witness = witness
        self.quiet = quiet
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: WitnessHTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive, as tlog-witness recommends
    server_version = "neikong-witness"

    def _reply(
        self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8"
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == ADD_CHECKPOINT_PATH:
            self.send_response(405)
            self.send_header("Allow", "POST")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._reply(404, b"not found\n")

    def do_POST(self) -> None:
        if self.path != ADD_CHECKPOINT_PATH:
            self._reply(404, b"not found\n")
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            self._reply(411, b"Content-Length required\n")
            return
        if not 0 <= length <= MAX_REQUEST_BYTES:
            self.close_connection = True
            self._reply(413, b"request too large\n")
            return
        body = self.rfile.read(length)
        try:
            old_size, proof, signed_checkpoint = parse_add_checkpoint_request(body)
            cosignature = self.server.witness.add_checkpoint(old_size, proof, signed_checkpoint)
        except WitnessConflict as exc:
            self.log_message("409 %s", exc)
            self._reply(409, f"{exc.current_size}\n".encode(), SIZE_CONTENT_TYPE)
        except WitnessError as exc:
            self.log_message("%d %s", exc.http_status, exc)
            self._reply(exc.http_status, f"{exc}\n".encode())
        except WitnessStateError as exc:
            self.log_message("500 %s", exc)
            self._reply(500, b"witness state could not be recorded\n")
        else:
            self._reply(200, cosignature.line())

    def log_message(self, format: str, *args: object) -> None:
        if not self.server.quiet:
            sys.stderr.write(f"witness {self.address_string()} {format % args}\n")


def make_server(
    witness: Witness, host: str = "127.0.0.1", port: int = 0, *, quiet: bool = False
) -> WitnessHTTPServer:
    """Bind (port 0 picks a free one; see `server_address`) without serving yet."""
    return WitnessHTTPServer((host, port), witness, quiet=quiet)


# --- client -----------------------------------------------------------------------------------


def submit_checkpoint(
    url: str,
    old_size: int,
    proof: Sequence[bytes],
    signed_checkpoint: bytes,
    timeout: float = 10.0,
) -> list[NoteSignature]:
    """POST a checkpoint to the witness at `url` (its submission prefix, or the full
    `…/add-checkpoint` URL) and return the cosignature lines it answers with (unverified).

    Raises `WitnessConflict` (409; `current_size` is the witness's size — equal to `old_size`
    if it holds another root for that size), `WitnessMalformed` (400), `WitnessBadSignature`
    (403), `WitnessUnknownLog` (404), `WitnessBadProof` (422), `WitnessUnavailable` otherwise.
    """
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"witness URL {url!r} is not http(s)")
    endpoint = url if url.endswith(ADD_CHECKPOINT_PATH) else url.rstrip("/") + ADD_CHECKPOINT_PATH
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        endpoint,
        data=encode_add_checkpoint_request(old_size, proof, signed_checkpoint),
        method="POST",
        headers={"Content-Type": "text/plain; charset=utf-8"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = response.read(MAX_REQUEST_BYTES + 1)
    except urllib.error.HTTPError as exc:
        with exc:
            detail = exc.read(4096)
            raise _status_error(exc.code, exc.headers.get("Content-Type", ""), detail) from None
    except (urllib.error.URLError, OSError) as exc:
        raise WitnessUnavailable(f"witness {endpoint} unreachable: {exc}") from exc
    try:
        return list(parse_signature_lines(body))
    except NoteError as exc:
        raise WitnessUnavailable(f"witness {endpoint} answered no signature lines: {exc}") from exc


def _status_error(status: int, content_type: str, body: bytes) -> Exception:
    text = body.decode("utf-8", "replace").strip()
    if status == 409:
        if content_type.split(";")[0].strip() != SIZE_CONTENT_TYPE or not _SIZE_RE.fullmatch(text):
            return WitnessUnavailable(f"witness answered 409 without a size: {text[:200]!r}")
        return WitnessConflict(f"witness has size {text}", current_size=int(text))
    error = _STATUS_ERRORS.get(status)
    if error is None:
        return WitnessUnavailable(f"witness answered HTTP {status}: {text[:200]}")
    return error(f"witness refused (HTTP {status}): {text[:200]}")
