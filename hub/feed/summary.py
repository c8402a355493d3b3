"""PHPFina summary sidecar: sums and counts of power-of-two blocks of slots, per feed, so an
averaged read costs what its answer costs, not what its range costs.

The PHPFina ``.meta``/``.dat`` stay byte-compatible with emoncms and remain the source of
truth; this file is a cache of them that can always be thrown away and rebuilt.

File format (one file per feed, next to the PHPFina pair; ``<id>`` is the feed id)::

    <id>.summary := header node*
    header       := static crc generation                     32 bytes
      static     := magic version level0 pad interval start_time dat_inode
                                                               24 bytes, STATIC_FORMAT '<4sHBxIIQ'
        magic      4 bytes  b"PFSM"
        version    uint16   1
        level0     uint8    L0: the finest stored level; a level-k node spans 2**k slots
        pad        1 byte   0
        interval   uint32   copied from <id>.meta when the summary was (re)built
        start_time uint32   copied from <id>.meta
        dat_inode  uint64   st_ino of <id>.dat: a replaced .dat makes the summary stale
      crc        uint32   zlib.crc32(static)                   CRC_FORMAT '<I'
      generation uint32   even: in step with the .dat; odd: history is being rewritten
                                                               GENERATION_FORMAT '<I'
    node         := sum count                                  12 bytes, NODE_FORMAT '<dI'
      sum        float64  LE  canonical sum of the node's non-NaN values (below)
      count      uint32   LE  number of non-NaN slots in the node

Nodes.  Node (k, j) covers slots [j * 2**k, (j + 1) * 2**k); it exists for every level
k >= L0 once the .dat holds its last slot.  Nodes are stored in post-order (by end slot,
then level ascending), so a growing feed only ever appends to this file, and

    index(k, j) = sum over m >= L0 of ((j + 1) * 2**k - 1) >> m,  plus (k - L0)
    total(npoints) = sum over m >= L0 of npoints >> m          nodes for a .dat of npoints

A file of c whole nodes holds nodes 0..c-1; a torn partial node at its end is ignored and
overwritten by the next append (as the .dat's own torn float is).

Canonical sums (the reason answers cannot change).  Leaf i is float64(value) or +0.0 for
NaN; S(k, j) = S(k-1, 2j) + S(k-1, 2j+1) in IEEE float64.  The slots [a, b) of an output
division are split into their canonical dyadic nodes (the segment-tree split), and the
division's sum is 0.0 + the left nodes by ascending level + the right nodes by descending
level, added one at a time; the count is the integer sum of the node counts.  The plain read
(no sidecar: ``summary=None``) and the summary read both compute exactly this; the summary
only supplies nodes of level >= L0 instead of recomputing them from the .dat, so the two
are bit-identical (tests/hub/test_phpfina_summary.py checks it over random feeds).  Every
averaged read goes through it: numeric intervals, limitinterval, calendar (DST days too),
skipmissing, delta and dp only post-process these means.  Non-averaged reads sample single
slots and never needed a summary.

Upkeep (``prepare_write``/``finish_write``, called by ``PHPFina.write_points`` under its
flock on the .dat):
  0. A feed gets its sidecar once it holds a whole block (LEVEL0 slots); before, reads
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
Readers take no lock: they use node (k, j) only if it is below the file's node count, ends
within the .dat they mapped, and holds no pending (unflushed) overwrite.  They read the
generation again after computing; if it moved they recompute on the plain path.  A reader
that finds the sidecar missing, stale or behind repairs it when the .dat's flock is free,
and otherwise reads plain (or with the nodes that are there).

Cost of a read: per output division, O(log length) stored nodes plus the raw slots of the
(at most two) 256-slot blocks its edges fall in; a 10-year range costs about what a 1-year
range does.  Each edge block's node tree is built once per read (a block is usually the end
of one division and the start of the next), level by level over all edge blocks at once, in
reused scratch buffers; the stored nodes of all divisions are gathered in one pass.  For a
year into 1,000 points that is ~1,000 blocks x 256 slots, most of the remaining time
(bench/README.md has the figures).

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
LEVEL0 = 8  # finest stored level: 256-slot blocks; 12 B / 256 * 2 = 0.094 B per slot stored
CATCH_UP_SLOTS = 1 << 20  # slots per step when rebuilding: bounds the memory a rebuild takes
SUFFIX = ".summary"

# --- binary layout -------------------------------------------------------------------------
MAGIC = b"PFSM"
VERSION = 1
STATIC_FORMAT = "<4sHBxIIQ"  # magic, version, level0, pad, interval, start_time, dat_inode
STATIC_SIZE = struct.calcsize(STATIC_FORMAT)  # 24
CRC_FORMAT = "<I"
CRC_SIZE = struct.calcsize(CRC_FORMAT)  # 4
GENERATION_FORMAT = "<I"
GENERATION_SIZE = struct.calcsize(GENERATION_FORMAT)  # 4
GENERATION_OFFSET = STATIC_SIZE + CRC_SIZE  # 28
HEADER_SIZE = GENERATION_OFFSET + GENERATION_SIZE  # 32
NODE_FORMAT = "<dI"  # sum, count
NODE_SIZE = struct.calcsize(NODE_FORMAT)  # 12
NODE_DTYPE = np.dtype([("sum", "<f8"), ("count", "<u4")])  # packed: itemsize == NODE_SIZE
VALUE_DTYPE = np.dtype("<f4")  # PHPFina slot values
BLOCK = 1 << LEVEL0
assert NODE_DTYPE.itemsize == NODE_SIZE and HEADER_SIZE == 32

_OFFSETS = np.arange(BLOCK, dtype=np.int64)


class CorruptSummary(Exception):
    """A sidecar that cannot be used; callers rebuild it or read plain."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"summary {path}: {problem}")
        self.path = path
        self.problem = problem


# --- node arithmetic -----------------------------------------------------------------------
def node_total(npoints: int) -> int:
    """Number of nodes a .dat of ``npoints`` slots has."""
    blocks = npoints >> LEVEL0
    return 2 * blocks - blocks.bit_count()  # sum over m >= 0 of x >> m == 2x - popcount(x)


def node_index(k: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Post-order position of nodes (k, j), k >= LEVEL0 (vectorised)."""
    blocks = (((j + 1) << k) - 1) >> LEVEL0
    return 2 * blocks - np.bitwise_count(blocks) + (k - LEVEL0)


def _index1(k: int, j: int) -> int:
    blocks = (((j + 1) << k) - 1) >> LEVEL0
    return 2 * blocks - blocks.bit_count() + k - LEVEL0


def _first_new(k: int, nodes: int, hi: int) -> int:
    """Smallest j in [0, hi] with index(k, j) >= nodes (index grows with j)."""
    lo = 0
    while lo < hi:
        mid = (lo + hi) // 2
        if _index1(k, mid) >= nodes:
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


# --- reading -------------------------------------------------------------------------------
@dataclass
class Summary:
    """An open sidecar, as a reader sees it: the first ``len(nodes)`` nodes are usable."""

    path: str
    start_time: int
    interval: int
    generation: int
    nodes: np.ndarray  # NODE_DTYPE records, read-only map
    _map: Any = None

    def __post_init__(self) -> None:
        # Plain strided views of the two fields: gathering from them beats structured records.
        self.sums = self.nodes["sum"]
        self.counts = self.nodes["count"]

    def still_current(self) -> bool:
        """No history rewrite started since this summary was opened (seqlock check)."""
        if self._map is None:
            return True
        (generation,) = struct.unpack_from(GENERATION_FORMAT, self._map, GENERATION_OFFSET)
        return generation == self.generation


def summary_path(engine, feed_id: int) -> str:
    return engine.dat_path(feed_id)[: -len(".dat")] + SUFFIX


def open_for_read(engine, meta, dat_inode: int) -> Summary | None:
    """The feed's summary for a read of the .dat ``dat_inode``, repairing it first if it is
    missing, stale or behind and no writer holds the feed.  None means: read plain."""
    if meta.npoints < BLOCK:
        return None  # no node yet: nothing to gain
    path = summary_path(engine, meta.feed_id)
    summary, problem = _open(path, meta, dat_inode, engine.maps)
    if problem is None and len(summary.nodes) >= node_total(meta.npoints):
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
    count = (size - HEADER_SIZE) // NODE_SIZE
    if count > node_total(meta.npoints):
        return None, f"{count} nodes, more than a .dat of {meta.npoints} slots has"
    nodes = np.frombuffer(mapped, dtype=NODE_DTYPE, count=count, offset=HEADER_SIZE)
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
    magic, version, level0, h_interval, h_start, h_inode = struct.unpack(STATIC_FORMAT, static)
    (crc,) = struct.unpack_from(CRC_FORMAT, header, STATIC_SIZE)
    if magic != MAGIC or crc != zlib.crc32(static):
        return "bad magic or header checksum"
    if version != VERSION or level0 != LEVEL0:
        return f"version {version} level0 {level0}, expected {VERSION} and {LEVEL0}"
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
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


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
    keys = np.empty(2 * n, dtype=np.int64)
    keys[0::2], keys[1::2] = block_a, block_b  # sorted already when the buckets are
    new = keys[1:] != keys[:-1]
    if (keys[1:] >= keys[:-1]).all():
        blocks = keys[np.concatenate(([True], new))]
        row = np.empty(2 * n, dtype=np.int64)
        row[0] = 0
        np.cumsum(new, out=row[1:])
    else:
        blocks, row = np.unique(keys, return_inverse=True)
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
        left, right = _low_nodes(a, b, whole_a, whole_b, m, row_a, row_b, leaves, inner)
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
    for r in range(LEVEL0):
        acc += left[r]
    if (whole_b > whole_a).any():
        counts += _add_high_nodes(view, acc, whole_a, whole_b, summary)
    for r in range(LEVEL0 - 1, -1, -1):
        acc += right[r]
    return acc, counts


def _low_nodes(a: np.ndarray, b: np.ndarray, whole_a: np.ndarray, whole_b: np.ndarray,
               m: int, row_a: np.ndarray, row_b: np.ndarray, leaves: np.ndarray,
               inner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The left and right nodes below LEVEL0 of each bucket, (LEVEL0, n) by level with 0.0
    where a bucket has none, from the trees of its edge blocks (rows ``row_a``, ``row_b``
    of the m edge blocks; ``leaves`` and ``inner`` as ``_edge_trees`` gives them)."""
    if (whole_a <= whole_b).all():
        # Every bucket holds a block boundary: its left nodes are those of [a, A) and its
        # right nodes those of [B, b), which depend only on a's and b's offsets: tables.
        left = _LOW_LEFT[:, a & (BLOCK - 1)]
        right = _LOW_RIGHT[:, b & (BLOCK - 1)]
    else:  # the general split; lo, hi: the whole nodes of [a, b) at level k are [lo, hi)
        lo = -((-a) >> _LOW_LEVELS)
        hi = b >> _LOW_LEVELS
        inside = lo < hi
        left = np.where((lo & 1).astype(bool) & inside, lo & (_LOW_WIDTH - 1), _ABSENT)
        right = np.where((hi & 1).astype(bool) & inside, (hi - 1) & (_LOW_WIDTH - 1),
                         _ABSENT)
    return (_low_values(left, row_a, m, leaves, inner),
            _low_values(right, row_b, m, leaves, inner))


def _low_values(at: np.ndarray, row: np.ndarray, m: int, leaves: np.ndarray,
                inner: np.ndarray) -> np.ndarray:
    """Sums of the nodes at position ``at[k]`` of level k of block row ``row`` (_ABSENT:
    none, 0.0): positions past the end clip to the 0.0 that ends ``leaves`` and ``inner``."""
    flat = at + row * _LOW_WIDTH
    flat[1:] += m * _LOW_OFFSET[1:]
    out = np.empty(at.shape)
    out[0] = leaves.take(flat[0], mode="clip")
    out[1:] = inner.take(flat[1:], mode="clip")
    return out


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


SCRATCH_BLOCKS = 1536  # reads with more edge blocks allocate their own buffers (3.1 MiB)
_SCRATCH = _Scratch()


def _split_tables() -> tuple[np.ndarray, np.ndarray]:
    """For each offset o in a block: the position within its level of the left node at
    level k < LEVEL0 of [o, BLOCK) and of the right node of [0, o); _ABSENT where none."""
    left = np.full((LEVEL0, BLOCK), _ABSENT, dtype=np.int64)
    right = np.full((LEVEL0, BLOCK), _ABSENT, dtype=np.int64)
    for o in range(BLOCK):
        lo, hi = o, BLOCK
        for k in range(LEVEL0):
            if lo < hi and lo & 1:
                left[k, o] = lo
                lo += 1
            lo, hi = lo >> 1, hi >> 1
        lo, hi = 0, o
        for k in range(LEVEL0):
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
_LOW_LEFT, _LOW_RIGHT = _split_tables()


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
    ks = _HIGH_LEVELS[:levels]
    lo = -((-whole_a) >> ks)  # the whole nodes at level LEVEL0 + k are [lo, hi)
    hi = whole_b >> ks
    inside = lo < hi
    # Rows: the left nodes (lo) by ascending level, then the right ones (hi - 1) descending;
    # only the nodes taken are looked at (untaken slots would be random reads of the map).
    take = np.concatenate(((lo & 1).astype(bool) & inside,
                           ((hi & 1).astype(bool) & inside)[::-1]))
    n = take.shape[1]
    flat = np.flatnonzero(take)  # (row, bucket) of each node taken, row-major
    row = flat // n
    k = np.concatenate((ks[:, 0], ks[::-1, 0])).take(row)
    ends = np.concatenate((lo + 1, hi[::-1])).take(flat) << k  # node ends, in blocks
    sums = np.empty(len(k))
    counts = np.empty(len(k), dtype=np.int64)
    todo = None
    if (summary is not None and summary.start_time == view.meta.start_time
            and summary.interval == view.meta.interval):
        # Gather every node the summary may answer for (see _stored_index) at once.
        last = ends - 1
        index = 2 * last - np.bitwise_count(last) + k  # node_index
        stored = None
        if int(whole_b.max()) << LEVEL0 > view.base_npoints:  # not stored over pending
            stored = (ends << LEVEL0) <= view.base_npoints
        if len(summary.nodes) < node_total(view.base_npoints):  # not in place: take
            stored = index < len(summary.nodes) if stored is None else (
                stored & (index < len(summary.nodes)))
        if len(view.overwrite_pos):
            over = _touches(view.overwrite_pos, (ends - (1 << k)) << LEVEL0, ends << LEVEL0)
            stored = ~over if stored is None else stored & ~over
        if stored is not None and not stored.all():
            todo = ~stored
            index = index[stored]
        records = summary.nodes.take(index)  # one pass over the map
        fetched = records["count"].astype(np.int64)
        if (fetched > (1 << ((k if todo is None else k[stored]) + LEVEL0))).any():
            raise CorruptSummary(summary.path, "a node counts more values than it has "
                                 "slots")
        if todo is None:
            sums, counts = records["sum"], fetched
        else:
            sums[stored] = records["sum"]
            counts[stored] = fetched
    else:
        todo = np.ones(len(k), dtype=bool)
    if todo is not None and todo.any():  # the rest from their children (plain read,
        node_k = k[todo]  # overlays, a lagging file)
        sums[todo], counts[todo] = _high_nodes(view, node_k + LEVEL0,
                                               (ends[todo] >> node_k) - 1, summary)
    terms = np.zeros(take.shape)
    terms.put(flat, sums)
    for r in range(len(terms)):
        acc += terms[r]
    # Integer sums: exact in float64 weights below 2**53 slots.
    return np.bincount(flat - row * n, weights=counts, minlength=n).astype(np.int64)


_HIGH_LEVELS = np.arange(64 - LEVEL0, dtype=np.int64)[:, None]



def _high_nodes(view, k: np.ndarray, j: np.ndarray, summary: Summary | None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Nodes at LEVEL0 and above: stored ones from the summary, the rest from children."""
    sums = np.empty(len(k))
    counts = np.empty(len(k), dtype=np.int64)
    todo = np.ones(len(k), dtype=bool)
    if summary is not None:
        index = _stored_index(view, summary, k, j)
        stored = index >= 0
        if stored.any():
            sums[stored], counts[stored] = _fetch(summary, k[stored], index[stored])
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


def _stored_index(view, summary: Summary, k: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Index of each node in the summary if it may answer for this view, else -1."""
    if summary.start_time != view.meta.start_time or summary.interval != view.meta.interval:
        return np.full(len(k), -1, dtype=np.int64)
    end = (j + 1) << k
    index = node_index(k, j)
    ok = (end <= view.base_npoints) & (index < len(summary.nodes))
    if len(view.overwrite_pos):
        ok &= ~_touches(view.overwrite_pos, j << k, end)
    return np.where(ok, index, -1)


def _fetch(summary: Summary, k: np.ndarray, index: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    counts = summary.counts[index].astype(np.int64)
    if (counts > (np.int64(1) << k)).any():
        raise CorruptSummary(summary.path, "a node counts more values than it has slots")
    return summary.sums[index], counts


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
    other = blocks[~clean]
    positions = ((other << LEVEL0)[:, None] + _OFFSETS).ravel()
    rows[~clean] = view.take(positions).reshape(-1, BLOCK)
    return rows


# --- writing -------------------------------------------------------------------------------
@dataclass
class WriteState:
    """What ``prepare_write`` found, for ``finish_write``."""

    path: str
    fd: int | None  # open sidecar, None when it is to be rebuilt
    nodes: int  # whole nodes in the sidecar
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
    if first_block >= meta.npoints >> LEVEL0 or _index1(LEVEL0, first_block) >= state.nodes:
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
        _append(engine, state.fd, state.nodes, meta.npoints, read_values)
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
    nodes = (size - HEADER_SIZE) // NODE_SIZE
    generation = 0
    if problem is None:
        (generation,) = struct.unpack_from(GENERATION_FORMAT, header, GENERATION_OFFSET)
        if generation % 2:
            problem = "a history rewrite was interrupted"
        elif nodes > node_total(meta.npoints):
            problem = f"{nodes} nodes, more than a .dat of {meta.npoints} slots has"
    if problem is not None:
        if meta.npoints:
            log.warning("%s: %s; rebuilding it from the .dat", path, problem)
        os.close(fd)
        return WriteState(path, None, 0, 0)
    return WriteState(path, fd, nodes, generation)


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
    sums = np.empty(len(js))
    counts = np.empty(len(js), dtype=np.int64)
    for i, idx in enumerate(node_index(np.full(len(js), k, dtype=np.int64), js).tolist()):
        raw = os.pread(fd, NODE_SIZE, HEADER_SIZE + idx * NODE_SIZE)
        if len(raw) != NODE_SIZE:
            raise CorruptSummary("sidecar", f"node {idx} missing")
        sums[i], counts[i] = struct.unpack(NODE_FORMAT, raw)
    return sums, counts


def _append(engine, fd: int, nodes: int, npoints: int,
            read_values: Callable[[int, int], np.ndarray]) -> int:
    """Append every node the sidecar lacks, CATCH_UP_SLOTS at a time (normally one step:
    one pwrite per flush).  Returns the new node count."""
    # Start from the largest whole-block prefix whose nodes are all present.
    lo, hi = 0, npoints >> LEVEL0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if node_total(mid << LEVEL0) <= nodes:
            lo = mid
        else:
            hi = mid - 1
    covered = lo << LEVEL0
    target = covered
    while nodes < node_total(npoints):
        target = min(npoints, target + CATCH_UP_SLOTS)
        nodes = _append_upto(engine, fd, nodes, target, read_values)
    return nodes


def _append_upto(engine, fd: int, nodes: int, npoints: int,
                 read_values: Callable[[int, int], np.ndarray]) -> int:
    total = node_total(npoints)
    if nodes >= total:
        return nodes
    new: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}  # level -> (first j, sums, counts)
    k = LEVEL0
    while npoints >> k:
        last = npoints >> k
        first = _first_new(k, nodes, last)
        if first < last:
            if k == LEVEL0:
                rows = read_values(first << LEVEL0, last << LEVEL0).reshape(-1, BLOCK)
                sums, counts = _block_sums(rows)
            else:
                child_sums, child_counts = _children(fd, new.get(k - 1), k - 1,
                                                     2 * first, 2 * last)
                sums = child_sums[0::2] + child_sums[1::2]
                counts = child_counts[0::2] + child_counts[1::2]
            new[k] = (first, sums, counts)
        k += 1
    ks = np.concatenate([np.full(len(s), lv, dtype=np.int64) for lv, (_, s, _) in new.items()])
    js = np.concatenate([np.arange(f, f + len(s), dtype=np.int64) for f, s, _ in new.values()])
    order = np.argsort(node_index(ks, js), kind="stable")
    if not np.array_equal(node_index(ks, js)[order], np.arange(nodes, total)):
        raise CorruptSummary("sidecar", "node bookkeeping is inconsistent")  # a bug, not data
    out = np.empty(total - nodes, dtype=NODE_DTYPE)
    out["sum"] = np.concatenate([s for _, s, _ in new.values()])[order]
    out["count"] = np.concatenate([c for _, _, c in new.values()])[order]
    _write(engine, fd, out.tobytes(), HEADER_SIZE + nodes * NODE_SIZE)
    return total


def _children(fd: int, new_level, k: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes (k, lo..hi-1): the freshly computed ones, the older ones read from the file."""
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
    written: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (index, sums, counts)
    previous: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (js, sums, counts)
    while len(js):
        index = node_index(np.full(len(js), k, dtype=np.int64), js)
        stored = index < state.nodes
        js, index = js[stored], index[stored]
        if not len(js):
            break
        if k == LEVEL0:
            rows = np.stack([read_values(int(j) << LEVEL0, (int(j) + 1) << LEVEL0)
                             for j in js])
            sums, counts = _block_sums(rows)
        else:
            assert previous is not None
            pairs = np.concatenate([js << 1, (js << 1) + 1])
            child_sums, child_counts = _read_nodes(fd, k - 1, pairs)
            changed = np.searchsorted(previous[0], pairs)
            hit = (changed < len(previous[0])) & (
                previous[0][np.minimum(changed, len(previous[0]) - 1)] == pairs)
            child_sums[hit] = previous[1][changed[hit]]
            child_counts[hit] = previous[2][changed[hit]]
            n = len(js)
            sums = child_sums[:n] + child_sums[n:]
            counts = child_counts[:n] + child_counts[n:]
        written.append((index, sums, counts))
        previous = (js, sums, counts)
        js = np.unique(js >> 1)
        k += 1
    if not written:
        return
    index = np.concatenate([w[0] for w in written])
    order = np.argsort(index)
    index = index[order]
    records = np.empty(len(index), dtype=NODE_DTYPE)
    records["sum"] = np.concatenate([w[1] for w in written])[order]
    records["count"] = np.concatenate([w[2] for w in written])[order]
    breaks = np.flatnonzero(np.diff(index) != 1) + 1
    for run in np.split(np.arange(len(index)), breaks):
        _write(engine, fd, records[run].tobytes(),
                          HEADER_SIZE + int(index[run[0]]) * NODE_SIZE)


def _rebuild(engine, path: str, dat_fd: int, meta) -> None:
    """Write a fresh sidecar from the .dat into a temporary file and rename it into place
    (readers holding the old file keep a consistent, if older, map of it)."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        static = struct.pack(STATIC_FORMAT, MAGIC, VERSION, LEVEL0, meta.interval,
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
    count = len(summary.nodes)
    if count < node_total(meta.npoints):
        problems.append(f"{count} nodes, the .dat needs {node_total(meta.npoints)}")
    with open(engine.dat_path(feed_id), "rb") as f:
        values = np.frombuffer(f.read(meta.npoints * VALUE_DTYPE.itemsize), dtype=VALUE_DTYPE)
    sums, counts = _block_sums(values[: (len(values) >> LEVEL0) << LEVEL0].reshape(-1, BLOCK))
    k = LEVEL0
    while len(sums):
        idx = node_index(np.full(len(sums), k, dtype=np.int64),
                         np.arange(len(sums), dtype=np.int64))
        inside = idx < count
        stored = summary.nodes[idx[inside]]
        bad = (np.ascontiguousarray(stored["sum"]).view(np.int64)
           != np.ascontiguousarray(sums[inside]).view(np.int64)) | (
            stored["count"] != counts[inside])
        for j in np.flatnonzero(bad)[:5]:
            problems.append(f"node ({k}, {j}) differs from the .dat")
        half = len(sums) // 2
        sums = sums[0: 2 * half: 2] + sums[1: 2 * half: 2]
        counts = counts[0: 2 * half: 2] + counts[1: 2 * half: 2]
        k += 1
    return problems
