"""PHPFina summary sidecar: sums and counts of power-of-two blocks of slots, per feed, so an
averaged read costs what its answer costs, not what its range costs.

The PHPFina ``.meta``/``.dat`` stay byte-compatible with emoncms and remain the source of
truth; this file is a cache of them that can always be thrown away and rebuilt.

File format (one file per feed, next to the PHPFina pair; ``<id>`` is the feed id)::

    <id>.summary := header node*
    header       := static crc generation                     32 bytes
      static     := magic version level0 level_high interval start_time dat_inode
                                                               24 bytes, STATIC_FORMAT '<4sHBBIIQ'
        magic      4 bytes  b"PFSM"
        version    uint16   2 (version 1, 12-byte nodes from level 8, is rebuilt on sight)
        level0     uint8    L0 = 7: the finest stored level; a level-k node spans 2**k slots
        level_high uint8    LH = 10: levels L0 < k < LH are not stored (see Nodes)
        interval   uint32   copied from <id>.meta when the summary was (re)built
        start_time uint32   copied from <id>.meta
        dat_inode  uint64   st_ino of <id>.dat: a replaced .dat makes the summary stale
      crc        uint32   zlib.crc32(static)                   CRC_FORMAT '<I'
      generation uint32   even: in step with the .dat; odd: history is being rewritten
                                                               GENERATION_FORMAT '<I'
    node         := base_node | high_node
    base_node    := sum count8     a level-L0 node             9 bytes, BASE_FORMAT '<dB'
    high_node    := sum count      a node of level >= LH       12 bytes, NODE_FORMAT '<dI'
      sum        float64  LE  canonical sum of the node's non-NaN values (below)
      count8     uint8        number of non-NaN slots in the node (<= 128)
      count      uint32   LE  number of non-NaN slots in the node

Nodes.  Node (k, j) covers slots [j * 2**k, (j + 1) * 2**k); it is stored for k = L0 and
every k >= LH once the .dat holds its last slot.  Nodes of levels L0 < k < LH are not
stored (their bytes would break the budget of 0.1 B written per slot): a reader sums them
from their 2**(k - L0) level-L0 nodes, which lie one after the other in the file.  Nodes
are stored in post-order (by end slot, then level ascending), so a growing feed only ever
appends to this file.  With high(x) = sum over m >= LH of x >> m (= 2y - popcount(y),
y = x >> LH), node (k, j) with last slot e = (j + 1) * 2**k - 1 starts at byte

    offset(k, j) = 9 * (e >> L0) + 12 * high(e)                   for k = L0
                 = 9 * (e >> L0) + 12 * high(e) + 9 + 12 * (k - LH)  for k >= LH
    size(npoints) = 9 * (npoints >> L0) + 12 * high(npoints)       bytes for npoints slots

after the header.  Nodes wholly inside the file are usable; a torn partial node at its end
is ignored and overwritten by the next append (as the .dat's own torn float is).  Bytes:
9 / 128 + 24 / 1024 = 0.094 per slot written, 2.3 % of the .dat on disk.

Canonical sums (the reason answers cannot change).  Leaf i is float64(value) or +0.0 for
NaN; S(k, j) = S(k-1, 2j) + S(k-1, 2j+1) in IEEE float64.  The slots [a, b) of an output
division are split into their canonical dyadic nodes (the segment-tree split), and the
division's sum is 0.0 + the left nodes by ascending level + the right nodes by descending
level, added one at a time; the count is the integer sum of the node counts.  The plain read
(no sidecar: ``summary=None``) and the summary read both compute exactly this; the summary
only supplies nodes of level >= L0 instead of recomputing them from the .dat (the
unstored levels summed from level L0 by the same rule), so the two are bit-identical
(tests/hub/test_phpfina_summary.py checks it over random feeds).  Every
averaged read goes through it: numeric intervals, limitinterval, calendar (DST days too),
skipmissing, delta and dp only post-process these means.  Non-averaged reads sample single
slots and never needed a summary.

Upkeep (``prepare_write``/``finish_write``, called by ``PHPFina.write_points`` under its
flock on the .dat):
  0. A feed gets its sidecar once it holds a whole block (2**L0 slots); before, reads
     are cheap anyway.
  1. Before the .dat is touched, the sidecar is checked against it: missing, bad header,
     another interval/start_time/inode, odd generation (a writer died mid-rewrite) or more
     nodes than the .dat can have -> rebuilt from the .dat after the write.
  2. Appends: after the .dat is written and synced, the nodes completed by the batch are
     appended with ONE pwrite (all levels at once; nothing when no node completed).  The
     sidecar is not fsynced: losing its tail in a power cut only makes it shorter, and a
     shorter summary is caught up from the .dat.
  3. Overwrites of slots inside stored nodes (late data): the generation is made odd and
     synced BEFORE the .dat changes, the affected nodes are rewritten in place after it,
     synced, and the generation made even.  A crash in between leaves an odd generation,
     which forces a rebuild.  These are the only extra writes, and history rewrites are rare.
Readers take no lock: they use node (k, j) only if its bytes (for an unstored level: its
last level-L0 node's) are wholly in the file, it ends within the .dat they mapped, and it
holds no pending (unflushed) overwrite.  They read the
generation again after computing; if it moved they recompute on the plain path.  A reader
that finds the sidecar missing, stale or behind repairs it when the .dat's flock is free,
and otherwise reads plain (or with the nodes that are there).

Cost of a read: per output division, O(log length) nodes of level >= L0 plus the raw slots
of the (at most two) 128-slot blocks its edges fall in (none for an edge on a block
boundary).  Each edge block's node tree is built once per read (a block is usually the end
of one division and the start of the next), level by level over all edge blocks at once,
in reused scratch buffers; which of its nodes a division takes depends only on its offset
in the block (tables), and levels no edge takes a node of are not looked at.  The stored
nodes of all divisions are gathered in one pass over the map, only those taken, sorted by
level so each level is one slice.  A 10-year range costs more than a 1-year one only by
its extra levels of nodes (bench/README.md has the figures).

Limits: node values carry no checksum (neither do .dat values); implausible counts are
detected and trigger a rebuild, ``verify`` compares every node with the .dat.  Torn tails
are handled by size, which assumes the filesystem never shows an appended region before
its data (ext4 data=ordered, the default).  Anything other than this engine that writes a
.dat must delete its ``.summary``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import mmap
import os
import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# --- tunables ------------------------------------------------------------------------------
LEVEL0 = 7  # finest stored level: 128-slot blocks (a read sums its edge blocks from raw slots)
LEVEL_HIGH = 10  # levels LEVEL0 < k < LEVEL_HIGH are not stored: summed from level LEVEL0
# Bytes per stored slot: 9 / 128 + 12 * 2 / 1024 = 0.094 (<= 0.1 written, 2.3 % on disk).
CATCH_UP_SLOTS = 1 << 20  # slots per step when rebuilding: bounds the memory a rebuild takes
SUFFIX = ".summary"

# --- binary layout -------------------------------------------------------------------------
MAGIC = b"PFSM"
VERSION = 2
STATIC_FORMAT = "<4sHBBIIQ"  # magic, version, level0, level_high, interval, start, dat_inode
STATIC_SIZE = struct.calcsize(STATIC_FORMAT)  # 24
CRC_FORMAT = "<I"
CRC_SIZE = struct.calcsize(CRC_FORMAT)  # 4
GENERATION_FORMAT = "<I"
GENERATION_SIZE = struct.calcsize(GENERATION_FORMAT)  # 4
GENERATION_OFFSET = STATIC_SIZE + CRC_SIZE  # 28
HEADER_SIZE = GENERATION_OFFSET + GENERATION_SIZE  # 32
BASE_FORMAT = "<dB"  # a level-LEVEL0 node: sum, count (<= 128)
BASE_SIZE = struct.calcsize(BASE_FORMAT)  # 9
NODE_FORMAT = "<dI"  # a node of level >= LEVEL_HIGH: sum, count
NODE_SIZE = struct.calcsize(NODE_FORMAT)  # 12
VALUE_DTYPE = np.dtype("<f4")  # PHPFina slot values
BLOCK = 1 << LEVEL0
assert HEADER_SIZE == 32 and BASE_SIZE == 9 and NODE_SIZE == 12 and BLOCK < 256

_OFFSETS = np.arange(BLOCK, dtype=np.int64)


class CorruptSummary(Exception):
    """A sidecar that cannot be used; callers rebuild it or read plain."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"summary {path}: {problem}")
        self.path = path
        self.problem = problem


# --- node arithmetic -----------------------------------------------------------------------
def is_stored(k: int) -> bool:
    return k == LEVEL0 or k >= LEVEL_HIGH


def node_size(k: int) -> int:
    return BASE_SIZE if k == LEVEL0 else NODE_SIZE


def body_size(npoints: int) -> int:
    """Bytes of the nodes (after the header) a .dat of ``npoints`` slots has."""
    high = npoints >> LEVEL_HIGH
    return BASE_SIZE * (npoints >> LEVEL0) + NODE_SIZE * (2 * high - high.bit_count())


def node_offset(k, j):
    """Byte offset in the body of stored nodes (k, j) (numpy arrays, or ints): after the
    nodes that end before node (k, j) ends and those that end with it at lower levels (a
    level-LEVEL0 node, then levels LEVEL_HIGH .. k-1)."""
    last = ((j + 1) << k) - 1  # last slot of the node
    high = last >> LEVEL_HIGH
    if isinstance(high, np.ndarray):
        before = BASE_SIZE * (last >> LEVEL0) + NODE_SIZE * (2 * high - np.bitwise_count(high))
        return before + np.where(k == LEVEL0, 0, BASE_SIZE + NODE_SIZE * (k - LEVEL_HIGH))
    high = int(high)
    before = BASE_SIZE * (int(last) >> LEVEL0) + NODE_SIZE * (2 * high - high.bit_count())
    return before + (0 if k == LEVEL0 else BASE_SIZE + NODE_SIZE * (int(k) - LEVEL_HIGH))


def _present_end(k: int, js: np.ndarray) -> np.ndarray:
    """Body bytes needed to hold nodes (k, js): their own end for a stored level, the end of
    their last level-LEVEL0 node for the levels summed from it."""
    if is_stored(k):
        return node_offset(np.int64(k), js) + node_size(k)
    last_base = ((js + 1) << (k - LEVEL0)) - 1
    return node_offset(np.int64(LEVEL0), last_base) + BASE_SIZE


def _blocks_present(body: int, most: int) -> int:
    """How many leading blocks (at most ``most``) have all their nodes in a body of ``body``
    bytes: the largest n with body_size(n blocks) <= body (a binary search)."""
    lo, hi = 0, most
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if body_size(mid << LEVEL0) <= body:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _whole(body: int) -> int:
    """Bytes of the whole nodes at the start of a body of ``body`` bytes (a torn node at its
    end is not whole and is overwritten by the next append)."""
    whole = body_size(_blocks_present(body, body // BASE_SIZE + 1) << LEVEL0)
    rest = body - whole  # part of the nodes ending at the next block's end
    if rest < BASE_SIZE:
        return whole
    return whole + BASE_SIZE + NODE_SIZE * ((rest - BASE_SIZE) // NODE_SIZE)


def _first_new(k: int, body: int, hi: int) -> int:
    """Smallest j in [0, hi] whose node (k, j) is not wholly in a body of ``body`` bytes."""
    lo = 0
    size = node_size(k)
    while lo < hi:
        mid = (lo + hi) // 2
        if node_offset(k, mid) + size > body:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _block_sums(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canonical sums and counts of whole (m, BLOCK) float32 blocks (NaN = missing).  The
    leaves' float64 values are exact; every addition is done in float64."""
    gaps = np.isnan(rows)
    level = np.where(gaps, np.float32(0), rows) if gaps.any() else rows
    for _ in range(LEVEL0):
        level = np.add(level[:, 0::2], level[:, 1::2], dtype=np.float64)
    return level.ravel(), BLOCK - np.count_nonzero(gaps, axis=1)


def _pairs(sums: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parents of consecutive (even, odd) children: the canonical one-level step."""
    return sums[0::2] + sums[1::2], counts[0::2] + counts[1::2]


# --- reading -------------------------------------------------------------------------------
@dataclass
class Summary:
    """An open sidecar, as a reader sees it: the nodes wholly inside ``body`` are usable."""

    path: str
    start_time: int
    interval: int
    generation: int
    body: np.ndarray  # the node bytes after the header, read-only map
    _map: Any = None

    def __post_init__(self) -> None:
        # Unaligned views of the body: a node's sum and count at its byte offset (fancy
        # indexing reads them in place; ``take`` would copy the whole view first).
        size = len(self.body)
        self.sums = _unaligned(self.body, "<f8", size - 7)
        self.counts8 = self.body
        self.counts32 = _unaligned(self.body, "<u4", size - 3)

    def still_current(self) -> bool:
        """No history rewrite started since this summary was opened (seqlock check)."""
        if self._map is None:
            return True
        (generation,) = struct.unpack_from(GENERATION_FORMAT, self._map, GENERATION_OFFSET)
        return generation == self.generation


def _unaligned(body: np.ndarray, dtype: str, count: int) -> np.ndarray:
    return np.ndarray((max(count, 0),), dtype=dtype, buffer=body, strides=(1,))


def summary_path(engine, feed_id: int) -> str:
    return engine.dat_path(feed_id)[: -len(".dat")] + SUFFIX


def open_for_read(engine, meta, dat_inode: int) -> Summary | None:
    """The feed's summary for a read of the .dat ``dat_inode``, repairing it first if it is
    missing, stale or behind and no writer holds the feed.  None means: read plain."""
    if meta.npoints < BLOCK:
        return None  # no node yet: nothing to gain
    path = summary_path(engine, meta.feed_id)
    summary, problem = _open(path, meta, dat_inode, engine.maps)
    if problem is None and len(summary.body) >= body_size(meta.npoints):
        return summary
    if _try_repair(engine, meta.feed_id):
        summary, problem = _open(path, meta, dat_inode, engine.maps)
    if problem is not None:
        return None
    return summary


def _open(path: str, meta, dat_inode: int, maps=None) -> tuple[Summary | None, str | None]:
    """The sidecar checked against the feed; ``maps`` (a phpfina.MapCache) keeps the map
    between reads: the header is checked again on every open, in place changes show."""
    try:
        st = os.stat(path)
        if st.st_size < HEADER_SIZE:
            return None, f"{st.st_size} bytes, shorter than the header"
        if maps is None:
            mapped = _map(path)
        else:
            mapped = maps.get(path, (st.st_dev, st.st_ino, st.st_size), lambda: _map(path))
    except FileNotFoundError:
        if maps is not None:
            maps.drop(path)  # deleted: let the old file's inode go
        return None, "missing"
    except (OSError, ValueError) as exc:
        return None, str(exc)
    size = len(mapped)
    header = bytes(mapped[:HEADER_SIZE])
    problem = _header_problem(header, meta.interval, meta.start_time, dat_inode)
    if problem is not None:
        return None, problem
    (generation,) = struct.unpack_from(GENERATION_FORMAT, header, GENERATION_OFFSET)
    if generation % 2:
        return None, "a history rewrite was interrupted (odd generation)"
    body = size - HEADER_SIZE
    if body > body_size(meta.npoints):
        return None, f"{body} bytes of nodes, more than a .dat of {meta.npoints} slots has"
    nodes = np.frombuffer(mapped, dtype=np.uint8, count=body, offset=HEADER_SIZE)
    return Summary(path, meta.start_time, meta.interval, generation, nodes, mapped), None


def _map(path: str) -> mmap.mmap:
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size < HEADER_SIZE:
            raise ValueError(f"{size} bytes, shorter than the header")
        return mmap.mmap(fd, size, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)


def _header_problem(header: bytes, interval: int, start_time: int, dat_inode: int
                    ) -> str | None:
    if len(header) < HEADER_SIZE:
        return "short header"
    static = header[:STATIC_SIZE]
    magic, version, level0, level_high, h_interval, h_start, h_inode = struct.unpack(
        STATIC_FORMAT, static)
    (crc,) = struct.unpack_from(CRC_FORMAT, header, STATIC_SIZE)
    if magic != MAGIC or crc != zlib.crc32(static):
        return "bad magic or header checksum"
    if (version, level0, level_high) != (VERSION, LEVEL0, LEVEL_HIGH):
        return (f"version {version} levels {level0}/{level_high}, expected {VERSION} and "
                f"{LEVEL0}/{LEVEL_HIGH}")
    if (h_interval, h_start) != (interval, start_time):
        return (f"built for interval {h_interval} start {h_start}, the feed has "
                f"{interval} and {start_time}")
    if h_inode != dat_inode:
        return "the .dat was replaced since the summary was built"
    return None


def bucket_means(view, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean of the non-NaN slots [a_i, b_i) of the view for each i; NaN where none."""
    opener = getattr(view, "open_summary", None)
    summary = opener() if opener is not None else None
    try:
        sums, counts = bucket_sums(view, a, b, summary)
        if summary is not None and not summary.still_current():
            sums, counts = bucket_sums(view, a, b, None)
    except CorruptSummary as exc:
        log.error("%s; reading plain, the next write rebuilds it", exc)
        with contextlib.suppress(OSError):
            os.unlink(exc.path)
        sums, counts = bucket_sums(view, a, b, None)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def bucket_sums(view, a: np.ndarray, b: np.ndarray, summary: Summary | None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Canonical sums and counts of slots [a_i, b_i) (0 <= a_i <= b_i <= npoints).

    The canonical split of [a, b) puts its nodes of level >= LEVEL0 exactly over the whole
    blocks inside [a, b); its nodes below LEVEL0 lie in the block holding a (left nodes) or
    b (right nodes).  So the trees of those edge blocks are computed once from the raw
    slots, the whole blocks come from the summary (or their children: ``_high_nodes``), and
    the fold adds, per bucket, the left nodes by ascending level then the right nodes by
    descending level (an absent node adds +0.0, a no-op: acc starts at +0.0 and never
    becomes -0.0)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    n = len(a)
    if n == 0 or not (b > a).any():
        return np.zeros(n), np.zeros(n, dtype=np.int64)
    block_a, block_b = a >> LEVEL0, b >> LEVEL0
    # Edge blocks: those holding a bucket edge that is not on a block boundary (an edge on
    # one takes no node below LEVEL0 and counts no slot there: its row may be any, 0).
    keys = np.empty(2 * n, dtype=np.int64)
    keys[0::2], keys[1::2] = block_a, block_b  # sorted already when the buckets are
    offsets = np.empty(2 * n, dtype=np.int64)
    offsets[0::2], offsets[1::2] = a, b
    offsets &= BLOCK - 1
    cut = offsets != 0
    if cut.all():
        blocks, row = _rows(keys)
    else:
        blocks, cut_row = _rows(keys[cut])
        row = np.zeros(2 * n, dtype=np.int64)
        row[cut] = cut_row
    row_a, row_b = row[0::2], row[1::2]
    whole_a = -((-a) >> LEVEL0)  # the whole blocks of [a, b) are [whole_a, whole_b)
    whole_b = block_b
    scratch = _SCRATCH.fit(len(blocks)) if len(blocks) <= SCRATCH_BLOCKS and (
        _SCRATCH.lock.acquire(blocking=False)) else None
    try:
        m = len(blocks)
        leaves = (np.empty(m * BLOCK + 1, dtype=VALUE_DTYPE) if scratch is None
                  else scratch.leaves[: m * BLOCK + 1])
        _block_rows(view, blocks, leaves[: m * BLOCK].reshape(m, BLOCK))
        inner, gaps = _edge_trees(leaves, m, scratch)
        left, right = _low_nodes(a, b, whole_a, whole_b, m, row_a, row_b, leaves, inner,
                                 _lowest_level(offsets))
    finally:
        if scratch is not None:
            scratch.lock.release()
    # Slots below LEVEL0: [a, min(b, A)) in a's block and [max(B, A), b) in b's block, with
    # A, B the first and last block boundaries in [a, b); their count minus their NaNs.
    edges = np.empty((n, 4), dtype=np.int64)  # flat positions in the edge blocks' leaves:
    first_a = (row_a - block_a) << LEVEL0  # mostly sorted, as searchsorted likes them
    first_b = (row_b - block_b) << LEVEL0
    edges[:, 0] = first_a + a
    edges[:, 1] = first_a + np.minimum(b, whole_a << LEVEL0)
    edges[:, 2] = first_b + np.minimum(np.maximum(whole_b, whole_a) << LEVEL0, b)
    edges[:, 3] = first_b + b
    if len(gaps):
        edges -= np.searchsorted(gaps, edges)  # minus the NaNs before
    counts = edges[:, 1] - edges[:, 0] + edges[:, 3] - edges[:, 2]
    acc = np.zeros(n)
    for row_sums in left:  # by ascending level (only the levels some bucket has)
        acc += row_sums
    if (whole_b > whole_a).any():
        counts += _add_high_nodes(view, acc, whole_a, whole_b, summary)
    for row_sums in right[::-1]:
        acc += row_sums
    return acc, counts


def _rows(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct keys, sorted, and the row of each key among them."""
    if len(keys) < 2:
        return keys, np.zeros(len(keys), dtype=np.int64)
    new = keys[1:] != keys[:-1]
    if (keys[1:] >= keys[:-1]).all():  # sorted already when the buckets are
        row = np.empty(len(keys), dtype=np.int64)
        row[0] = 0
        np.cumsum(new, out=row[1:])
        return keys[np.concatenate(([True], new))], row
    return np.unique(keys, return_inverse=True)


def _lowest_level(offsets: np.ndarray) -> int:
    """The lowest level below LEVEL0 at which any bucket takes a node: edges at offsets
    that are all multiples of 2**k in their blocks take none below level k."""
    bits = int(np.bitwise_or.reduce(offsets)) if len(offsets) else 0
    return LEVEL0 if bits == 0 else ((bits & -bits).bit_length() - 1)


def _low_nodes(a: np.ndarray, b: np.ndarray, whole_a: np.ndarray, whole_b: np.ndarray,
               m: int, row_a: np.ndarray, row_b: np.ndarray, leaves: np.ndarray,
               inner: np.ndarray, lowest: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The left and right nodes below LEVEL0 of each bucket, (LEVEL0 - lowest, n) by level
    from ``lowest`` up, with 0.0 where a bucket has none (no bucket has one below
    ``lowest``), from the trees of its edge blocks (rows ``row_a``, ``row_b`` of the m edge
    blocks; ``leaves`` and ``inner`` as ``_edge_trees`` gives them)."""
    n = len(a)
    if lowest >= LEVEL0:
        return np.empty((0, n)), np.empty((0, n))
    if (whole_a <= whole_b).all():
        # Every bucket holds a block boundary: its left nodes are those of [a, A) and its
        # right nodes those of [B, b), which depend only on a's and b's offsets: tables.
        at = _LOW_TABLES[lowest:].take(
            np.concatenate((a & (BLOCK - 1), (b & (BLOCK - 1)) + BLOCK)), axis=1)
    else:  # the general split; lo, hi: the whole nodes of [a, b) at level k are [lo, hi)
        levels = _LOW_LEVELS[lowest:]
        lo = -((-a) >> levels)
        hi = b >> levels
        inside = lo < hi
        width = _LOW_WIDTH[lowest:] - 1
        at = np.concatenate((
            np.where((lo & 1).astype(bool) & inside, lo & width, _ABSENT),
            np.where((hi & 1).astype(bool) & inside, (hi - 1) & width, _ABSENT)), axis=1)
    # Node at position p of level k of block row r: leaves[r * BLOCK + p] for k = 0, else
    # inner[m * _LOW_OFFSET[k] + r * width(k) + p]; _ABSENT clips to the 0.0 ending both.
    at += np.concatenate((row_a, row_b)) * _LOW_WIDTH[lowest:]
    out = np.empty(at.shape)
    if lowest == 0:
        at[1:] += m * _LOW_OFFSET[1:]
        out[0] = leaves.take(at[0], mode="clip")
        out[1:] = inner.take(at[1:], mode="clip")
    else:
        at += m * _LOW_OFFSET[lowest:]
        inner.take(at, mode="clip", out=out)
    return out[:, :n], out[:, n:]


class _Scratch:
    """Buffers for the edge blocks of one read at a time: fresh memory costs a page fault
    per 4 KiB touched, which for a year read cost more than the arithmetic.  Allocated on
    first use and grown to the largest read so far, at most SCRATCH_BLOCKS blocks (below
    4 MiB each, where numpy would ask for transparent huge pages: 2 MiB resident at once)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.leaves = np.empty(1, dtype=VALUE_DTYPE)
        self.inner = np.empty(1)

    def fit(self, blocks: int) -> _Scratch:
        if len(self.leaves) < blocks * BLOCK + 1:
            blocks = min(SCRATCH_BLOCKS, max(blocks, 2 * (len(self.leaves) // BLOCK), 64))
            self.leaves = np.empty(blocks * BLOCK + 1, dtype=VALUE_DTYPE)
            self.inner = np.empty(blocks * (BLOCK - 2) + 1)
        return self


SCRATCH_BLOCKS = 1536  # reads with more edge blocks allocate their own buffers (0.8 + 1.5 MiB)
_SCRATCH = _Scratch()


def _split_tables(levels: int) -> tuple[np.ndarray, np.ndarray]:
    """For each offset o in a span of 2**levels: the position within its level of the left
    node at level k < levels of [o, 2**levels) and of the right node of [0, o); _ABSENT
    where none."""
    width = 1 << levels
    left = np.full((levels, width), _ABSENT, dtype=np.int64)
    right = np.full((levels, width), _ABSENT, dtype=np.int64)
    for o in range(width):
        lo, hi = o, width
        for k in range(levels):
            if lo < hi and lo & 1:
                left[k, o] = lo
                lo += 1
            lo, hi = lo >> 1, hi >> 1
        lo, hi = 0, o
        for k in range(levels):
            if lo < hi and hi & 1:
                hi -= 1
                right[k, o] = hi
            lo, hi = lo >> 1, hi >> 1
    return left, right


_ABSENT = 1 << 40  # a node position that clips to the 0.0 ending the buffers
_LOW_LEVELS = np.arange(LEVEL0, dtype=np.int64)[:, None]
_LOW_WIDTH = BLOCK >> _LOW_LEVELS  # nodes per block at each level below LEVEL0
# Where level k >= 1 starts in the ``inner`` array of m blocks, in units of m: levels are
# stored one after the other, each row-major.  Level 0 (the leaves) is apart: offset 0.
_LOW_OFFSET = np.where(_LOW_LEVELS > 0, BLOCK - (2 * BLOCK >> _LOW_LEVELS), 0)
_LOW_TABLES = np.concatenate(_split_tables(LEVEL0), axis=1)  # left | right, by offset


def _edge_trees(leaves: np.ndarray, m: int, scratch: _Scratch | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """For the slots of m edge blocks, flat float32 followed by one spare slot (a copy this
    changes: NaN becomes +0.0, the spare slot 0.0): the canonical sums of the nodes of
    levels 1..LEVEL0-1 (float64, flat, level after level, see _LOW_OFFSET, then a 0.0) and
    the flat positions of the NaN slots, sorted."""
    gaps = np.flatnonzero(np.isnan(leaves))
    leaves[gaps] = 0.0
    leaves[-1] = 0.0
    size = m * (BLOCK - 2)
    inner = np.empty(size + 1) if scratch is None else scratch.inner[: size + 1]
    inner[size] = 0.0
    level = inner[: m * BLOCK // 2]
    slots = leaves[: m * BLOCK]
    np.add(slots[0::2], slots[1::2], out=level, dtype=np.float64)  # float32 -> 64 exact
    start = len(level)
    while len(level) > 2 * m:
        nxt = inner[start: start + len(level) // 2]
        np.add(level[0::2], level[1::2], out=nxt)
        start += len(nxt)
        level = nxt
    return inner, gaps[gaps < m * BLOCK]


def _add_high_nodes(view, acc: np.ndarray, whole_a: np.ndarray, whole_b: np.ndarray,
                    summary: Summary | None) -> np.ndarray:
    """Add to ``acc`` each bucket's nodes of level >= LEVEL0, the canonical split of its
    whole blocks [whole_a, whole_b): left nodes by ascending level, then right nodes by
    descending level.  Returns their counts."""
    levels = int((whole_b - whole_a).max()).bit_length()  # above LEVEL0
    n = len(whole_a)
    # Node ends (in level-k nodes) by level k, side (left: lo + 1, right: hi), bucket: the
    # whole nodes at level LEVEL0 + k are [lo, hi); a side takes its node if that is odd.
    # In int32 (a .dat of 2**32 slots has 2**25 blocks): half the bytes of int64 to pass.
    small = int(whole_b.max()) < 2**31 - 1
    ks = (_HIGH_LEVELS32 if small else _HIGH_LEVELS)[:levels]
    ends = np.empty((levels, 2, n), dtype=np.int32 if small else np.int64)
    lo = ends[:, 0]
    np.copyto(lo[0], -whole_a, casting="unsafe")
    np.right_shift(lo[0], ks, out=lo)
    np.negative(lo, out=lo)
    hi = ends[:, 1]
    np.copyto(hi[0], whole_b, casting="unsafe")
    np.right_shift(hi[0], ks, out=hi)
    take = (ends & 1).astype(bool)
    inside = lo < hi
    take[:, 0] &= inside
    take[:, 1] &= inside
    lo += 1
    # Only the nodes taken are looked at (untaken ones would be random reads of the map);
    # ``flat`` is sorted by (level, side, bucket), so each level's nodes are one slice.
    flat = np.flatnonzero(take)
    bounds = np.searchsorted(flat, _LEVEL_STARTS[: levels + 1] * (2 * n))
    k = np.repeat(_LEVEL_STARTS[:levels], np.diff(bounds))  # flat // (2 * n), cheaper
    node_ends = ends.take(flat).astype(np.int64)  # in nodes of their level
    block_ends = node_ends << k
    ok = None
    if summary is not None and not _all_available(view, summary, int(whole_b.max()) << LEVEL0):
        ok = _available(view, summary, k + LEVEL0, block_ends << LEVEL0,
                        int(whole_b.max()) << LEVEL0)
    if summary is not None and ok is None:  # the summary answers for every node
        sums, counts = _gather_levels(summary, block_ends, k, bounds[:4].tolist())
    else:
        level = k + LEVEL0
        slot_ends = block_ends << LEVEL0
        if summary is None:
            sums, counts = _high_nodes(view, level, node_ends - 1, None)
        else:  # the rest from their children (overlays, a lagging file, another start)
            sums = np.empty(len(k))
            counts = np.empty(len(k), dtype=np.int64)
            sums[ok], counts[ok] = _gather(summary, level[ok], slot_ends[ok])
            todo = ~ok
            sums[todo], counts[todo] = _high_nodes(view, level[todo],
                                                   node_ends[todo] - 1, summary)
    terms = np.zeros(take.shape)
    terms.put(flat, sums)
    for r in range(levels):  # left nodes by ascending level
        acc += terms[r, 0]
    for r in range(levels - 1, -1, -1):  # right nodes by descending level
        acc += terms[r, 1]
    node_counts = np.zeros(take.shape, dtype=np.int64)
    node_counts.put(flat, counts)
    return node_counts.sum(axis=(0, 1))


_LEVEL_STARTS = np.arange(65, dtype=np.int64)


def _gather_levels(summary: Summary, block_ends: np.ndarray, k: np.ndarray, bounds: list
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``_gather`` for nodes sorted by level (k = level - LEVEL0), all answered by the
    summary: ``bounds`` are where levels 0..3 start (as far as there are levels).  Each
    level's nodes are a slice, so the levels summed from LEVEL0 nodes need no selection."""
    # Body bytes up to the end of the level-LEVEL0 node ending with each node (_base_end).
    high = (block_ends - 1) >> (LEVEL_HIGH - LEVEL0)
    at = BASE_SIZE * block_ends + NODE_SIZE * (2 * high - np.bitwise_count(high))
    sums = np.empty(len(k))
    counts = np.empty(len(k), dtype=np.int64)
    bounds = bounds + [len(k)] * (5 - len(bounds))
    base_counts = []
    for level in range(LEVEL0, LEVEL_HIGH):  # summed from 1, 2, 4 level-LEVEL0 nodes
        first, last = bounds[level - LEVEL0], bounds[level - LEVEL0 + 1]
        if first == last:
            continue
        tops = at[first:last]
        parts = [(summary.sums[tops - i * BASE_SIZE], summary.counts8[tops - i * BASE_SIZE + 8])
                 for i in range(1 << (level - LEVEL0), 0, -1)]
        base_counts.extend(c for _, c in parts)
        while len(parts) > 1:
            parts = [(s1 + s2, c1.astype(np.int64) + c2)
                     for (s1, c1), (s2, c2) in zip(parts[0::2], parts[1::2], strict=True)]
        sums[first:last], counts[first:last] = parts[0]
    if base_counts and max(int(c.max()) for c in base_counts) > BLOCK:
        raise CorruptSummary(summary.path, "a node counts more values than it has slots")
    first = bounds[LEVEL_HIGH - LEVEL0]
    if first < len(k):  # stored: after the level-LEVEL0 node and lower stored levels
        stored_k = k[first:]
        tops = at[first:] + NODE_SIZE * (stored_k - (LEVEL_HIGH - LEVEL0))
        sums[first:] = summary.sums[tops]
        counts[first:] = summary.counts32[tops + 8]
        if (counts[first:] > (np.int64(1) << (stored_k + LEVEL0))).any():
            raise CorruptSummary(summary.path, "a node counts more values than it has slots")
    return sums, counts


_HIGH_LEVELS = np.arange(64 - LEVEL0, dtype=np.int64)[:, None]
_HIGH_LEVELS32 = np.arange(32, dtype=np.int32)[:, None]


def _high_nodes(view, k: np.ndarray, j: np.ndarray, summary: Summary | None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Nodes at LEVEL0 and above: from the summary where it may answer, else from their
    children (level LEVEL0: from the slots)."""
    sums = np.empty(len(k))
    counts = np.empty(len(k), dtype=np.int64)
    todo = np.ones(len(k), dtype=bool)
    if summary is not None and len(k):
        ends = (j + 1) << k
        ok = _available(view, summary, k, ends, int(ends.max()))
        stored = np.ones(len(k), dtype=bool) if ok is None else ok
        if stored.any():
            sums[stored], counts[stored] = _gather(summary, k[stored], ends[stored])
            todo &= ~stored
    base = todo & (k == LEVEL0)
    if base.any():
        sums[base], counts[base] = _block_sums(_block_rows(view, j[base]))
    up = todo & (k > LEVEL0)
    if up.any():
        child_k = k[up] - 1
        child_j = j[up] << 1
        n = len(child_k)
        child_sums, child_counts = _high_nodes(view, np.concatenate([child_k, child_k]),
                                               np.concatenate([child_j, child_j + 1]), summary)
        sums[up] = child_sums[:n] + child_sums[n:]
        counts[up] = child_counts[:n] + child_counts[n:]
    return sums, counts


def _all_available(view, summary: Summary, max_end: int) -> bool:
    """Whether the summary answers for every node ending by slot ``max_end`` (the usual
    case: ``_available`` would say None), without looking at the nodes."""
    return (summary.start_time == view.meta.start_time
            and summary.interval == view.meta.interval and max_end <= view.base_npoints
            and len(summary.body) >= body_size(view.base_npoints)
            and not len(view.overwrite_pos))


def _available(view, summary: Summary, level: np.ndarray, ends: np.ndarray, max_end: int
               ) -> np.ndarray | None:
    """Which nodes (level, ending at slot ``ends``) the summary may answer for in this view
    (stored, or summed from stored level-LEVEL0 nodes); None: all of them."""
    if summary.start_time != view.meta.start_time or summary.interval != view.meta.interval:
        return np.zeros(len(level), dtype=bool)
    ok = None
    if max_end > view.base_npoints:  # nodes over pending points are not stored
        ok = ends <= view.base_npoints
    if len(summary.body) < body_size(view.base_npoints):  # a lagging file: what is there
        there = _needed(level, ends) <= len(summary.body)
        ok = there if ok is None else ok & there
    if len(view.overwrite_pos):
        clean = ~_touches(view.overwrite_pos, ends - (np.int64(1) << level), ends)
        ok = clean if ok is None else ok & clean
    return ok


def _base_end(ends: np.ndarray) -> np.ndarray:
    """Body bytes up to and including the level-LEVEL0 node ending at slot ``ends``."""
    high = (ends - 1) >> LEVEL_HIGH
    return BASE_SIZE * (ends >> LEVEL0) + NODE_SIZE * (2 * high - np.bitwise_count(high))


def _needed(level: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Body bytes a node needs: up to its own end, or its last level-LEVEL0 node's."""
    return _base_end(ends) + NODE_SIZE * np.maximum(level - (LEVEL_HIGH - 1), 0)


def _gather(summary: Summary, level: np.ndarray, ends: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """Sums and counts of nodes the summary answers for: stored ones read in place, those of
    the levels between LEVEL0 and LEVEL_HIGH summed (canonically) from their level-LEVEL0
    nodes, which lie one after the other in the file (no stored node ends inside them)."""
    # Where each node starts; for the unstored levels, where its first level-LEVEL0 node does.
    at = _base_end(ends) + _START_IN_FILE.take(level)
    sums = summary.sums[at]
    counts = summary.counts8[at + 8].astype(np.int64)
    high = np.flatnonzero(level >= LEVEL_HIGH)
    if len(high):
        counts[high] = summary.counts32[at[high] + 8]
    if len(high) < len(level):
        # The other level-LEVEL0 nodes under the unstored ones, all read in one pass.
        sels = [(k, np.flatnonzero(level == k)) for k in range(LEVEL0 + 1, LEVEL_HIGH)]
        where = np.concatenate([at[sel] + i * BASE_SIZE for k, sel in sels
                                for i in range(1, 1 << (k - LEVEL0))])
        more_sums = summary.sums[where]
        more_counts = summary.counts8[where + 8].astype(np.int64)
        done = 0
        for k, sel in sels:
            parts = [(sums[sel], counts[sel])]
            for _ in range(1, 1 << (k - LEVEL0)):
                parts.append((more_sums[done: done + len(sel)],
                              more_counts[done: done + len(sel)]))
                done += len(sel)
            while len(parts) > 1:
                parts = [(s1 + s2, c1 + c2)
                         for (s1, c1), (s2, c2) in zip(parts[0::2], parts[1::2], strict=True)]
            sums[sel], counts[sel] = parts[0]
    if (counts > _COUNT_LIMIT.take(level)).any():
        raise CorruptSummary(summary.path, "a node counts more values than it has slots")
    return sums, counts


_LEVELS = np.arange(64, dtype=np.int64)
_COUNT_LIMIT = np.where(_LEVELS < 63, np.int64(1) << np.minimum(_LEVELS, 62), 0)
# A node's start relative to the end of the level-LEVEL0 node that ends with it; for the
# unstored levels, its first level-LEVEL0 node's start.
_START_IN_FILE = np.where(
    _LEVELS >= LEVEL_HIGH, NODE_SIZE * (_LEVELS - LEVEL_HIGH),
    -(BASE_SIZE << np.clip(_LEVELS - LEVEL0, 0, LEVEL_HIGH - LEVEL0)))


def _touches(positions: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Whether any of the sorted ``positions`` lies in [start, end) of each span."""
    return np.searchsorted(positions, starts) < np.searchsorted(positions, ends)


def _block_rows(view, blocks: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(len(blocks), BLOCK) float32 slots of the view (a copy, into ``out`` if given); NaN
    beyond its end."""
    full = view.base_npoints // BLOCK
    by_block = np.asarray(view.base)[: full * BLOCK].reshape(full, BLOCK)  # no memmap overhead
    clean = blocks < full
    if len(view.overwrite_pos):
        clean &= ~_touches(view.overwrite_pos, blocks << LEVEL0, (blocks + 1) << LEVEL0)
    rows = np.empty((len(blocks), BLOCK), dtype=VALUE_DTYPE) if out is None else out
    if full:  # the rows not clean are overwritten below
        by_block.take(blocks, axis=0, mode="clip", out=rows)
    if clean.all():
        return rows
    other = np.flatnonzero(~clean)
    if view.plain:  # blocks past the last whole one: the file's tail, then NaN
        rows[other] = np.nan
        tail = view.base_npoints - full * BLOCK
        last = other[blocks[other] == full]
        if tail and len(last):
            rows[last, :tail] = np.asarray(view.base)[full * BLOCK: view.base_npoints]
        return rows
    positions = ((blocks[other] << LEVEL0)[:, None] + _OFFSETS).ravel()
    rows[other] = view.take(positions).reshape(-1, BLOCK)
    return rows


# --- writing -------------------------------------------------------------------------------
@dataclass
class WriteState:
    """What ``prepare_write`` found, for ``finish_write``."""

    path: str
    fd: int | None  # open sidecar, None when it is to be rebuilt
    body: int  # bytes of whole nodes in the sidecar, after its header
    generation: int
    rewriting: bool = False  # generation made odd: stored nodes are about to change

    def close(self) -> None:
        """Release the sidecar (idempotent); a write that failed half-way leaves it for the
        next write to check."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def prepare_write(engine, feed_id: int, dat_fd: int, meta, overwrite_pos: np.ndarray
                  ) -> WriteState:
    """Before a batch changes the .dat (flock held): check the sidecar against the .dat as it
    is, and make it durably 'rewriting' if the batch overwrites slots of stored nodes."""
    path = summary_path(engine, feed_id)
    state = _inspect(path, meta, os.fstat(dat_fd).st_ino)
    if state.fd is None or not len(overwrite_pos):
        return state
    first_block = int(overwrite_pos[0]) >> LEVEL0
    if (first_block >= meta.npoints >> LEVEL0
            or node_offset(LEVEL0, first_block) + BASE_SIZE > state.body):
        return state  # only slots not yet in any stored node change
    try:
        _set_generation(engine, state, state.generation + 1)
        if engine.fsync:
            os.fdatasync(state.fd)
    except OSError:
        state.close()
        os.unlink(path)  # if this fails too, the write must not go ahead: let it raise
        return state
    state.rewriting = True
    return state


def finish_write(engine, state: WriteState, dat_fd: int, meta, overwrite_pos: np.ndarray
                 ) -> None:
    """After the batch is in the .dat and synced: patch rewritten nodes, append new ones.
    A failure here costs a rebuild later, never a wrong answer: the sidecar is removed."""
    try:
        if state.fd is None:
            if meta.npoints >= BLOCK:  # a feed gets its sidecar with its first whole block
                _rebuild(engine, state.path, dat_fd, meta)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(state.path)
            return
        read_values = _dat_reader(dat_fd)
        if state.rewriting:
            _patch(engine, state, overwrite_pos, read_values)
        _append(engine, state.fd, state.body, meta.npoints, read_values)
        if state.rewriting:
            if engine.fsync:
                os.fdatasync(state.fd)
            _set_generation(engine, state, state.generation + 1)  # even again
    except (OSError, CorruptSummary) as exc:
        log.error("feed %s: summary update failed, removing it (rebuilt later): %s",
                  meta.feed_id, exc)
        with contextlib.suppress(OSError):
            os.unlink(state.path)
    finally:
        state.close()


def _write(engine, fd: int, data: bytes, offset: int) -> None:
    engine.summary_bytes_written += engine._write_all(fd, data, offset)


def delete(engine, feed_id: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(summary_path(engine, feed_id))


def _inspect(path: str, meta, dat_inode: int) -> WriteState:
    """Open the sidecar for update, or say it must be rebuilt (fd None)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return WriteState(path, None, 0, 0)
    try:
        header = os.pread(fd, HEADER_SIZE, 0)
        size = os.fstat(fd).st_size
    except OSError:
        os.close(fd)
        raise
    problem = _header_problem(header, meta.interval, meta.start_time, dat_inode)
    body = size - HEADER_SIZE
    generation = 0
    if problem is None:
        (generation,) = struct.unpack_from(GENERATION_FORMAT, header, GENERATION_OFFSET)
        if generation % 2:
            problem = "a history rewrite was interrupted"
        elif body > body_size(meta.npoints):
            problem = f"{body} bytes of nodes, more than a .dat of {meta.npoints} slots has"
    if problem is not None:
        if meta.npoints:
            log.warning("%s: %s; rebuilding it from the .dat", path, problem)
        os.close(fd)
        return WriteState(path, None, 0, 0)
    return WriteState(path, fd, _whole(body), generation)


def _set_generation(engine, state: WriteState, generation: int) -> None:
    assert state.fd is not None
    _write(engine, state.fd, struct.pack(GENERATION_FORMAT, generation % 2**32),
                      GENERATION_OFFSET)
    state.generation = generation


def _dat_reader(dat_fd: int) -> Callable[[int, int], np.ndarray]:
    def read(a: int, b: int) -> np.ndarray:
        raw = os.pread(dat_fd, (b - a) * VALUE_DTYPE.itemsize, a * VALUE_DTYPE.itemsize)
        if len(raw) != (b - a) * VALUE_DTYPE.itemsize:
            raise OSError(f"short read of the .dat: slots {a}..{b}")
        return np.frombuffer(raw, dtype=VALUE_DTYPE)
    return read


def _read_nodes(fd: int, k: int, js: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes (k, js) from the sidecar file; those of unstored levels from their children."""
    if not is_stored(k):
        children = np.stack((js << 1, (js << 1) + 1), axis=1).ravel()
        return _pairs(*_read_nodes(fd, k - 1, children))
    sums = np.empty(len(js))
    counts = np.empty(len(js), dtype=np.int64)
    size, form = (BASE_SIZE, BASE_FORMAT) if k == LEVEL0 else (NODE_SIZE, NODE_FORMAT)
    for i, at in enumerate(node_offset(np.int64(k), js).tolist()):
        raw = os.pread(fd, size, HEADER_SIZE + at)
        if len(raw) != size:
            raise CorruptSummary("sidecar", f"node at {at} missing")
        sums[i], counts[i] = struct.unpack(form, raw)
    return sums, counts


def _append(engine, fd: int, body: int, npoints: int,
            read_values: Callable[[int, int], np.ndarray]) -> int:
    """Append every node the sidecar lacks, CATCH_UP_SLOTS at a time (normally one step:
    one pwrite per flush).  Returns the new body size."""
    # Start from the largest whole-block prefix whose nodes are all present.
    target = _blocks_present(body, npoints >> LEVEL0) << LEVEL0
    while body < body_size(npoints):
        target = min(npoints, target + CATCH_UP_SLOTS)
        body = _append_upto(engine, fd, body, target, read_values)
    return body


def _append_upto(engine, fd: int, body: int, npoints: int,
                 read_values: Callable[[int, int], np.ndarray]) -> int:
    total = body_size(npoints)
    if body >= total:
        return body
    new: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}  # level -> (first j, sums, counts)
    last = npoints >> LEVEL0
    first = _first_new(LEVEL0, body, last)
    if first < last:
        rows = read_values(first << LEVEL0, last << LEVEL0).reshape(-1, BLOCK)
        new[LEVEL0] = (first, *_block_sums(rows))
    k = LEVEL_HIGH
    while npoints >> k:
        last = npoints >> k
        first = _first_new(k, body, last)
        if first < last:
            new[k] = (first, *_pairs(*_children(fd, new, k - 1, 2 * first, 2 * last)))
        k += 1
    out = np.zeros(total - body, dtype=np.uint8)
    starts, sizes = [], []
    for level, (first, sums, counts) in new.items():
        at = node_offset(np.int64(level), np.arange(first, first + len(sums))) - body
        _put_records(out, level, at, sums, counts)
        starts.append(at)
        sizes.append(np.full(len(at), node_size(level)))
    at = np.concatenate(starts)
    order = np.argsort(at)
    ends = (at + np.concatenate(sizes))[order]
    if at[order][0] != 0 or ends[-1] != len(out) or not np.array_equal(at[order][1:],
                                                                         ends[:-1]):
        raise CorruptSummary("sidecar", "node bookkeeping is inconsistent")  # a bug, not data
    _write(engine, fd, out.tobytes(), HEADER_SIZE + body)
    return total


def _put_records(out: np.ndarray, level: int, at: np.ndarray, sums: np.ndarray,
                 counts: np.ndarray) -> None:
    """Nodes of one level into a byte buffer at offsets ``at``."""
    _unaligned(out, "<f8", len(out) - 7)[at] = sums
    if level == LEVEL0:
        out[at + 8] = counts
    else:
        _unaligned(out, "<u4", len(out) - 3)[at + 8] = counts


def _children(fd: int, new: dict, k: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes (k, lo..hi-1): the freshly computed ones, the older ones read from the file;
    those of unstored levels from their own children."""
    if not is_stored(k):
        return _pairs(*_children(fd, new, k - 1, 2 * lo, 2 * hi))
    new_level = new.get(k)
    first = hi if new_level is None else min(max(new_level[0], lo), hi)
    sums = np.empty(hi - lo)
    counts = np.empty(hi - lo, dtype=np.int64)
    if lo < first:
        sums[: first - lo], counts[: first - lo] = _read_nodes(
            fd, k, np.arange(lo, first, dtype=np.int64))
    if first < hi:
        start, new_sums, new_counts = new_level
        sums[first - lo:] = new_sums[first - start: hi - start]
        counts[first - lo:] = new_counts[first - start: hi - start]
    return sums, counts


def _patch(engine, state: WriteState, overwrite_pos: np.ndarray,
           read_values: Callable[[int, int], np.ndarray]) -> None:
    """Recompute, bottom up, the stored nodes holding an overwritten slot; write them back."""
    assert state.fd is not None
    fd = state.fd
    js = np.unique(overwrite_pos >> LEVEL0)
    k = LEVEL0
    written: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
    previous: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (js, sums, counts)
    while len(js):
        js = js[_present_end(k, js) <= state.body]  # in the file (or summed from it)
        if not len(js):
            break
        if k == LEVEL0:
            rows = np.stack([read_values(int(j) << LEVEL0, (int(j) + 1) << LEVEL0)
                             for j in js])
            sums, counts = _block_sums(rows)
        else:
            assert previous is not None
            pairs = np.stack((js << 1, (js << 1) + 1), axis=1).ravel()
            child_sums, child_counts = _read_nodes(fd, k - 1, pairs)
            changed = np.searchsorted(previous[0], pairs)
            hit = (changed < len(previous[0])) & (
                previous[0][np.minimum(changed, len(previous[0]) - 1)] == pairs)
            child_sums[hit] = previous[1][changed[hit]]
            child_counts[hit] = previous[2][changed[hit]]
            sums, counts = _pairs(child_sums, child_counts)
        if is_stored(k):
            written.append((k, node_offset(np.int64(k), js), sums, counts))
        previous = (js, sums, counts)
        js = np.unique(js >> 1)
        k += 1
    for level, at, sums, counts in written:  # one write per run of adjacent nodes
        size = node_size(level)
        for run in np.split(np.arange(len(at)), np.flatnonzero(np.diff(at) != size) + 1):
            out = np.zeros(len(run) * size, dtype=np.uint8)
            _put_records(out, level, np.arange(len(run)) * size, sums[run], counts[run])
            _write(engine, fd, out.tobytes(), HEADER_SIZE + int(at[run[0]]))


def _rebuild(engine, path: str, dat_fd: int, meta) -> None:
    """Write a fresh sidecar from the .dat into a temporary file and rename it into place
    (readers holding the old file keep a consistent, if older, map of it)."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        static = struct.pack(STATIC_FORMAT, MAGIC, VERSION, LEVEL0, LEVEL_HIGH, meta.interval,
                             meta.start_time, os.fstat(dat_fd).st_ino)
        header = static + struct.pack(CRC_FORMAT, zlib.crc32(static)) + struct.pack(
            GENERATION_FORMAT, 0)
        _write(engine, fd, header, 0)
        _append(engine, fd, 0, meta.npoints, _dat_reader(dat_fd))
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)


def _try_repair(engine, feed_id: int) -> bool:
    """Rebuild or catch up the sidecar from a reader, if no writer holds the feed."""
    try:
        dat_fd = os.open(engine.dat_path(feed_id), os.O_RDONLY)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(dat_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a flush is running; it brings the sidecar in step itself
        meta = engine.get_meta(feed_id)
        state = _inspect(summary_path(engine, feed_id), meta, os.fstat(dat_fd).st_ino)
        finish_write(engine, state, dat_fd, meta, np.empty(0, dtype=np.int64))
        return True
    except Exception as exc:  # a reader never fails because its cache could not be fixed
        log.warning("feed %s: could not repair its summary: %s", feed_id, exc)
        return False
    finally:
        os.close(dat_fd)  # also releases the flock


def verify(engine, feed_id: int) -> list[str]:
    """Every stored node compared with the .dat; returns the problems (empty: in step)."""
    meta = engine.get_meta(feed_id)
    path = summary_path(engine, feed_id)
    try:
        dat_inode = os.stat(engine.dat_path(feed_id)).st_ino
    except OSError as exc:
        return [str(exc)]
    summary, problem = _open(path, meta, dat_inode)
    if problem == "missing" and meta.npoints < BLOCK:
        return []  # not made until the feed holds a whole block
    if problem is not None:
        return [problem]
    assert summary is not None
    problems = []
    size = len(summary.body)
    if size < body_size(meta.npoints):
        problems.append(f"{size} bytes of nodes, the .dat needs {body_size(meta.npoints)}")
    with open(engine.dat_path(feed_id), "rb") as f:
        values = np.frombuffer(f.read(meta.npoints * VALUE_DTYPE.itemsize), dtype=VALUE_DTYPE)
    sums, counts = _block_sums(values[: (len(values) >> LEVEL0) << LEVEL0].reshape(-1, BLOCK))
    k = LEVEL0
    while len(sums):
        if is_stored(k):
            js = np.arange(len(sums), dtype=np.int64)
            inside = node_offset(np.int64(k), js) + node_size(k) <= size
            at = node_offset(np.int64(k), js[inside])
            stored_counts = summary.counts8[at + 8] if k == LEVEL0 else summary.counts32[at + 8]
            bad = (summary.sums[at].view(np.int64) != sums[inside].view(np.int64)) | (
                stored_counts != counts[inside])
            for j in np.flatnonzero(bad)[:5]:
                problems.append(f"node ({k}, {j}) differs from the .dat")
        half = len(sums) // 2
        sums, counts = _pairs(sums[: 2 * half], counts[: 2 * half])
        k += 1
    return problems
