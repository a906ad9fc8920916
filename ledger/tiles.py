"""C2SP tlog-tiles on the filesystem: hash tiles, entry bundles, atomic and immutable writes.

Layout under a tile root (``DIR/tiles/``), servable as static files by any web server::

    checkpoint                   the latest signed checkpoint (the only file ever replaced)
    tile/<L>/<N>                 full hash tile: 256 hashes of level L, 8,192 bytes
    tile/<L>/<N>.p/<W>           partial hash tile: the first W (1..255) hashes of tile N
    tile/entries/<N>[.p/<W>]     entry bundle: records, each a big-endian uint16 length ‖ bytes

``<N>`` is split into zero-padded 3-digit path elements, all but the last prefixed with ``x``
(1234067 → ``x001/x234/067``). Hash *i* of tile *N* at level *L* is
MTH(D[(N·256 + i)·256^L : (N·256 + i + 1)·256^L]); level 0 holds leaf hashes, and entry *i* of
bundle *N* hashes (RFC 6962 leaf hash) to hash *i* of level-0 tile *N*.

Guarantees:

- Every write is atomic: the bytes go to a temporary file in the target directory, are fsynced,
  and are then hard-linked to the final name (which never replaces an existing file), so a
  crash leaves either no file or the whole file, never a torn one. Directories touched are
  fsynced by `TileStore.sync`, which a sealer MUST call before it signs a checkpoint.
- A tile or bundle, once written, MUST NOT change: writing to an existing path is a no-op when
  the bytes are equal and raises `TileConflict` (with both digests) when they differ.
- `TileHashReader` implements `ledger.merkle_proofs.HashReader` for a tree of a fixed size:
  every subtree hash costs at most one tile read (cached) and at most 127 node hashes, so an
  inclusion or consistency proof costs O(log n) reads.

The in-memory right edge that produces these tiles is `ledger.tile_builder.TileBuilder`.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import struct
import threading
from collections import OrderedDict, deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ledger.errors import NeikongError, VerificationError
from ledger.files import fsync_dir
from ledger.merkle import HASH_SIZE, leaf_hash

__all__ = [
    "CHECKPOINT_FILE",
    "MAX_ENTRY_SIZE",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "TileConflict",
    "TileError",
    "TileHashReader",
    "TileStore",
    "decode_bundle",
    "encode_bundle",
    "entries_path",
    "index_path",
    "partial_tiles",
    "perfect_root",
    "split_hashes",
    "tile_path",
]

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT  # 256 hashes per full tile
MAX_ENTRY_SIZE = 0xFFFF  # a bundle entry has a uint16 length prefix
CHECKPOINT_FILE = "checkpoint"
_TILE_BYTES = TILE_WIDTH * HASH_SIZE
_U16 = struct.Struct(">H")
_sha256 = hashlib.sha256


class TileError(NeikongError, OSError):
    """A tile or entry bundle is missing, malformed or cannot be written."""


class TileConflict(VerificationError):
    """Writing an immutable tile or bundle would change its published bytes.

    This is either tamper evidence (the stored log or the tiles were altered) or a bug; the
    writer MUST stop. `path`, `existing` and `new` (SHA-256 of each content) are the evidence.
    """

    def __init__(self, path: str, existing: bytes, new: bytes) -> None:
        super().__init__(
            f"{path} is published and would change (sha256 {hashlib.sha256(existing).hexdigest()}"
            f" on disk, {hashlib.sha256(new).hexdigest()} now); tiles are never rewritten"
        )
        self.path = path
        self.existing = hashlib.sha256(existing).digest()
        self.new = hashlib.sha256(new).digest()


# --- paths and encodings ------------------------------------------------------------------


def index_path(index: int) -> str:
    """Encode a tile index as 3-digit path elements: 1234067 → ``x001/x234/067``."""
    if index < 0:
        raise ValueError(f"tile index {index} is negative")
    parts = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        parts.append(f"x{index % 1000:03d}")
        index //= 1000
    return "/".join(reversed(parts))


def _suffix(width: int) -> str:
    if not 1 <= width <= TILE_WIDTH:
        raise ValueError(f"tile width {width} is outside [1, {TILE_WIDTH}]")
    return "" if width == TILE_WIDTH else f".p/{width}"


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    """Relative path of a hash tile: ``tile/<L>/<N>[.p/<W>]``."""
    if not 0 <= level <= 63:
        raise ValueError(f"tile level {level} is outside [0, 63]")
    return f"tile/{level}/{index_path(index)}{_suffix(width)}"


def entries_path(index: int, width: int = TILE_WIDTH) -> str:
    """Relative path of an entry bundle: ``tile/entries/<N>[.p/<W>]``."""
    return f"tile/entries/{index_path(index)}{_suffix(width)}"


def partial_tiles(size: int) -> list[tuple[int, int, int]]:
    """(level, index, width) of every partial hash tile of a tree of `size` leaves.

    Per C2SP: the partial tile at level L has ``floor(size / 256^L) mod 256`` hashes; levels
    where that is 0 have none. Level 0's entry is also the partial entry bundle.
    """
    out = []
    level = 0
    while size >> (TILE_HEIGHT * level):
        count = size >> (TILE_HEIGHT * level)
        if count % TILE_WIDTH:
            out.append((level, count >> TILE_HEIGHT, count % TILE_WIDTH))
        level += 1
    return out


def encode_bundle(records: Sequence[bytes]) -> bytes:
    """Concatenate records, each prefixed with its length as a big-endian uint16."""
    try:
        return b"".join([_U16.pack(len(r)) + r for r in records])
    except struct.error:
        size = max(len(r) for r in records)
        raise TileError(
            f"a {size}-byte record does not fit an entry bundle (at most "
            f"{MAX_ENTRY_SIZE} bytes); lower the ledger's max_record_bytes"
        ) from None


def decode_bundle(data: bytes) -> list[bytes]:
    """Inverse of `encode_bundle`; raises `TileError` on a truncated bundle."""
    out, at = [], 0
    while at < len(data):
        if at + 2 > len(data):
            raise TileError(f"entry bundle truncated in a length prefix at byte {at}")
        length = int.from_bytes(data[at : at + 2], "big")
        if at + 2 + length > len(data):
            raise TileError(f"entry bundle truncated in an entry at byte {at}")
        out.append(data[at + 2 : at + 2 + length])
        at += 2 + length
    return out


def perfect_root(hashes: Sequence[bytes]) -> bytes:
    """MTH of a power-of-two number of hashes (a perfect subtree), bottom-up."""
    level = list(hashes)
    if not level or len(level) & (len(level) - 1):
        raise ValueError(f"{len(level)} hashes do not form a perfect subtree")
    sha256 = _sha256
    while len(level) > 1:  # merkle.node_hash, inlined
        level = [
            sha256(b"\x01" + a + b).digest() for a, b in zip(level[::2], level[1::2], strict=True)
        ]
    return level[0]


def split_hashes(data: bytes) -> list[bytes]:
    """Cut the bytes of a hash tile into its 32-byte hashes."""
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


# --- the store ----------------------------------------------------------------------------


class TileStore:
    """Tiles, bundles and the latest checkpoint under one root directory."""

    def __init__(self, root: Path, *, durable: bool = True, writers: int = 4) -> None:
        self.root = root
        self.durable = durable  # False only for scratch trees (tests, benchmarks)
        self._unsynced: set[Path] = set()
        self._lock = threading.Lock()
        self._writers = writers
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque[Future[bool]] = deque()
        self._dirs: set[Path] = set()  # directories known to exist

    def write_async(self, rel: str, data: bytes) -> None:
        """`write` in a background thread (fsync overlaps hashing); `wait` collects errors.

        At most ``8 * writers`` writes are in flight; more blocks until the oldest is done.
        """
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._writers, thread_name_prefix="tile-writer")
        while len(self._pending) >= 8 * self._writers:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(self.write, rel, data))

    def wait(self) -> None:
        """Wait for every `write_async`; re-raise the first error (e.g. `TileConflict`)."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            for future in self._pending:
                future.cancel()
            self._pending.clear()

    def close(self) -> None:
        """Wait for pending writes (errors propagate) and stop the writer threads."""
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    def path(self, rel: str) -> Path:
        return self.root / rel

    def write(self, rel: str, data: bytes) -> bool:
        """Write an immutable file atomically; return False if identical bytes were there.

        Raises `TileConflict` if the file exists with other bytes (it is never replaced).
        """
        target = self.root / rel
        existing = self._read_existing(target)
        if existing is not None:
            if existing != data:
                raise TileConflict(rel, existing, data)
            return False
        self._makedirs(target.parent)
        tmp = target.parent / f".tmp-{os.getpid()}-{secrets.token_hex(6)}"
        try:
            _write_synced(tmp, data, fsync=self.durable)
            try:
                os.link(tmp, target)  # never replaces: a concurrent writer's file wins
            except FileExistsError:
                current = target.read_bytes()
                if current != data:
                    raise TileConflict(rel, current, data) from None
                return False
        except OSError as exc:
            raise TileError(f"cannot write {target}: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        with self._lock:
            self._unsynced.add(target.parent)
        return True

    def write_checkpoint(self, data: bytes) -> None:
        """Atomically replace ``checkpoint`` (temp file, fsync, rename, fsync directory)."""
        self._makedirs(self.root)
        tmp = self.root / f".tmp-{os.getpid()}-{secrets.token_hex(6)}"
        try:
            _write_synced(tmp, data)
            os.replace(tmp, self.root / CHECKPOINT_FILE)
            fsync_dir(self.root)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise TileError(f"cannot write {self.root / CHECKPOINT_FILE}: {exc}") from exc

    def read_checkpoint(self) -> bytes | None:
        try:
            return (self.root / CHECKPOINT_FILE).read_bytes()
        except FileNotFoundError:
            return None

    def sync(self) -> None:
        """Wait for pending writes, then fsync every directory that gained a file."""
        self.wait()
        with self._lock:
            unsynced, self._unsynced = self._unsynced, set()
        if self.durable:
            for directory in sorted(unsynced, key=lambda p: len(p.parts), reverse=True):
                fsync_dir(directory)

    def read(self, rel: str) -> bytes:
        try:
            return (self.root / rel).read_bytes()
        except FileNotFoundError:
            raise TileError(f"{self.root / rel} is missing") from None
        except OSError as exc:
            raise TileError(f"cannot read {self.root / rel}: {exc}") from exc

    def read_tile(self, level: int, index: int, width: int = TILE_WIDTH) -> bytes:
        """The first `width` hashes of a tile: its partial file, else a prefix of the full one."""
        want = width * HASH_SIZE
        if width < TILE_WIDTH and (self.root / tile_path(level, index, width)).exists():
            data = self.read(tile_path(level, index, width))
            if len(data) != want:
                raise TileError(
                    f"{tile_path(level, index, width)} has {len(data)} bytes, want {want}"
                )
            return data
        rel = tile_path(level, index)
        if not (self.root / rel).exists():
            raise TileError(f"tile {tile_path(level, index, width)} is missing under {self.root}")
        data = self.read(rel)
        if len(data) != _TILE_BYTES:
            raise TileError(f"{rel} has {len(data)} bytes, want {_TILE_BYTES}")
        return data[:want]

    def read_entries(self, index: int, width: int = TILE_WIDTH) -> list[bytes]:
        """The first `width` records of an entry bundle (partial file, else full bundle)."""
        candidates = [entries_path(index, width)]
        if width < TILE_WIDTH:
            candidates.append(entries_path(index))
        for rel in candidates:
            if (self.root / rel).exists():
                records = decode_bundle(self.read(rel))
                if len(records) < width:
                    raise TileError(f"{rel} holds {len(records)} entries, want {width}")
                return records[:width]
        raise TileError(f"entry bundle {candidates[0]} is missing under {self.root}")

    def partial_widths(self, rel_full: str) -> list[int]:
        """Widths of the partial files present beside the full path `rel_full`."""
        directory = self.root / f"{rel_full}.p"
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return []
        return sorted(int(n) for n in names if n.isdigit())

    @staticmethod
    def _read_existing(target: Path) -> bytes | None:
        try:
            return target.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TileError(f"cannot read {target}: {exc}") from exc

    def _makedirs(self, directory: Path) -> None:
        if directory in self._dirs:
            return
        missing = []
        while not directory.exists():
            missing.append(directory)
            directory = directory.parent
        for d in reversed(missing):
            d.mkdir(exist_ok=True)
            with self._lock:
                self._unsynced.add(d.parent)
        self._dirs.update(missing)
        self._dirs.add(directory)


def _write_synced(path: Path, data: bytes, *, fsync: bool = True) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


# --- reading proofs from tiles ------------------------------------------------------------


class TileHashReader:
    """`merkle_proofs.HashReader` over the tiles of a tree of `size` leaves.

    Reads the tile file each hash lives in (the partial file of the right width for tiles at
    the right edge) and keeps the last `cache_tiles` tiles in memory. It MUST raise `TileError`
    (never guess) for a missing or malformed tile and `ValueError` for a range outside the tree.
    """

    def __init__(self, store: TileStore, size: int, *, cache_tiles: int = 64) -> None:
        if size < 0:
            raise ValueError(f"tree size {size} is negative")
        self.store = store
        self.size = size
        self._cache: OrderedDict[tuple[int, int], list[bytes]] = OrderedDict()
        self._cache_tiles = cache_tiles

    def _tile_width(self, level: int, index: int) -> int:
        count = self.size >> (TILE_HEIGHT * level)  # hashes that exist at this level
        return min(TILE_WIDTH, count - index * TILE_WIDTH)

    def tile_hashes(self, level: int, index: int) -> list[bytes]:
        """The hashes of tile (level, index) as far as the tree of `size` holds them."""
        key = (level, index)
        hashes = self._cache.get(key)
        if hashes is None:
            width = self._tile_width(level, index)
            if width <= 0:
                raise ValueError(f"tile {level}/{index} lies beyond the tree of size {self.size}")
            hashes = split_hashes(self.store.read_tile(level, index, width))
            self._cache[key] = hashes
            if len(self._cache) > self._cache_tiles:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return hashes

    def subtree_hash(self, start: int, end: int) -> bytes:
        """See `HashReader.subtree_hash`."""
        width = end - start
        if start < 0 or width <= 0 or width & (width - 1) or start % width:
            raise ValueError(f"[{start}, {end}) is not a perfect aligned subtree")
        if end > self.size:
            raise ValueError(f"[{start}, {end}) lies beyond the tree of size {self.size}")
        height = width.bit_length() - 1
        level, rest = divmod(height, TILE_HEIGHT)
        first = start >> (TILE_HEIGHT * level)
        hashes = self.tile_hashes(level, first >> TILE_HEIGHT)
        offset = first % TILE_WIDTH
        return perfect_root(hashes[offset : offset + (1 << rest)])

    def entry(self, index: int) -> bytes:
        """The record at leaf `index`, checked against its leaf hash in the level-0 tile."""
        if not 0 <= index < self.size:
            raise ValueError(f"no entry {index} in a tree of size {self.size}")
        tile = index >> TILE_HEIGHT
        records = self.store.read_entries(tile, self._tile_width(0, tile))
        record = records[index % TILE_WIDTH]
        if leaf_hash(record) != self.subtree_hash(index, index + 1):
            raise TileError(f"entry {index} does not hash to its leaf in tile/0/{tile}")
        return record
