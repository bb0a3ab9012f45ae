"""Keeping freed array memory in the process instead of handing it back to the system.

A program allocates its step outputs afresh on every call, and a training step
frees most of them before the next. With glibc's default policy a large array
(from 128 KiB up, rising to the largest one freed so far) is a fresh ``mmap``,
and the memory freed at the top of the heap is given back to the system once
more than twice that is free: the next allocation of the same size is new pages
again, each one a page fault when first written. On the 2-core benchmark
machine a fresh 4 MiB array cost about 1.5 ms of page faults, four times the
subtraction that filled it; W7's training step allocates dozens of them (its
CPU time per step was 150 ms, 105 ms with the memory kept).

So when the numba backend first compiles a program, :func:`keep_freed_memory`
tells glibc's allocator (``mallopt``) to serve arrays of any size from the heap
(no separate mappings: ``M_MMAP_MAX`` 0) and to keep up to
:data:`TRIM_THRESHOLD` of free memory at its top: the same sizes come back
from memory already mapped. MXNet's pooled storage manager keeps freed buffers
for the same reason. The process's resident size stays at its peak (up to that
much more).

The mapping threshold alone (:data:`MMAP_THRESHOLD`, at most 32 MiB in glibc)
left W8's (1120, 10000) float32 blocks (45 MB: the logits, their log_softmax and
its gradient) fresh mappings on every step: 32,800 page faults a step, 63 ms of
its 240 ms of CPU on one thread. glibc still maps memory where the heap cannot
grow (and a thread's arena beyond its 64 MiB heaps).
Memory kept that way is the peak of the work the process did, even after that
work ended: a test suite or a notebook that trained DenseNet-121 (5.5 GB a step)
and went on to smaller models held it all (the suite grew to 12 GB). So when a
new program is compiled (the work changed: a training loop compiles its
programs once, at its start), :func:`release_idle_memory` gives the allocator's
free memory back to the system (``malloc_trim``) if it holds more than
:data:`RELEASE_ABOVE`; a loop that goes on faults its step's pages in once.

``SYMGRAD_KEEP_MEMORY=0`` leaves the allocator as it is; so does a C library
other than glibc.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools

from ... import settings

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4

MMAP_THRESHOLD = 32 << 20  # glibc's largest (set, it also stops glibc moving it itself)
MMAP_MAX = 0  # mappings for allocations: none, bigger arrays come from the heap too
TRIM_THRESHOLD = 512 << 20

RELEASE_ABOVE = 1 << 30  # free memory a new program may find kept

_applied: bool | None = None  # None: not tried yet


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (malloc.h): the allocator's totals in bytes."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
        ).split()
    ]


def keep_freed_memory() -> bool:
    """Set the allocator's thresholds once per process (see the module docstring);
    whether they are in force."""
    global _applied
    if _applied is None:
        _applied = settings.current().keep_memory and _mallopt(
            (_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            (_M_MMAP_MAX, MMAP_MAX),
            (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        )
    return _applied


@functools.cache
def _libc() -> ctypes.CDLL:
    """The C library's functions, through the process's own symbols (not
    ``ctypes.util.find_library``, which runs ``ldconfig``: tens of milliseconds
    on every new program)."""
    return ctypes.CDLL(None)


def trim() -> None:
    """Give every free page the C allocator holds back to the system
    (``malloc_trim``; nothing where the C library has none)."""
    with contextlib.suppress(AttributeError):
        _libc().malloc_trim(0)


def release_idle_memory(above: int | None = None) -> bool:
    """Give the free memory the allocator keeps back to the system when it is more
    than ``above`` bytes (default :data:`RELEASE_ABOVE`); whether it did. Only
    where :func:`keep_freed_memory` is in force (glibc 2.33 or later)."""
    if not _applied:
        return False
    mallinfo2 = getattr(_libc(), "mallinfo2", None)
    if mallinfo2 is None:
        return False
    mallinfo2.restype = _MallInfo2
    if mallinfo2().fordblks <= (RELEASE_ABOVE if above is None else above):
        return False
    trim()
    return True


def _mallopt(*pairs: tuple[int, int]) -> bool:
    """``mallopt(parameter, value)`` for each pair; False where there is no glibc
    ``mallopt`` or it refuses a value."""
    try:
        mallopt = _libc().mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(parameter, value) == 1 for parameter, value in pairs)
