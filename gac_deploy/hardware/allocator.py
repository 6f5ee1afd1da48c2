"""Keep freed tensor memory in the process between emulator batches (glibc only).

The emulator allocates and frees tensors of a few MB to a few hundred MB, the same
sizes batch after batch. glibc serves blocks above its mmap threshold (dynamic, at most
32 MiB) with fresh ``mmap`` calls and returns the top of its heap to the system once
more than the trim threshold lies free there, so a run can pay a page fault for every
4 KiB page it writes again: measured on the digits bundle, 8,600 faults and about 20 ms
of system time per 360-image call in some processes and none in others. Raising both
thresholds (``mallopt``, what the ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_``
environment variables do at start-up) lets the allocator reuse those pages instead.
Blocks above :data:`MMAP_THRESHOLD` still come from ``mmap`` and go back when freed.
Peak memory is what the batch needs either way; freed pages stay in the process until
it exits. Elsewhere (not glibc) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 64 << 20  # bytes: smaller blocks come from the heap and are reused
TRIM_THRESHOLD = 256 << 20  # bytes free at the heap's top before it is given back


@functools.cache
def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; True if it took effect."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
