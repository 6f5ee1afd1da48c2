"""With glibc's thresholds raised, a block freed and asked for again costs no page faults."""

import platform
import resource

import pytest
import torch

from gac_deploy.hardware.allocator import MMAP_THRESHOLD, keep_freed_memory

BLOCK = 48 << 20  # above glibc's largest dynamic mmap threshold (32 MiB), below ours


def test_freed_blocks_are_reused_without_page_faults():
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    assert BLOCK < MMAP_THRESHOLD
    assert keep_freed_memory() is True
    faults = []
    for _ in range(6):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        block = torch.empty(BLOCK // 4, dtype=torch.float32).fill_(1.0)  # every page written
        del block
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    pages = BLOCK // 4096
    # the first blocks may need fresh pages (the heap grows where earlier tests left
    # it); later ones reuse them, where a fresh mmap would fault on each of its pages
    assert max(faults[3:]) < pages // 10, faults
