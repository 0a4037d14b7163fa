"""Process-wide torch settings for one block of work (threads, seeded generators, denormals), the caller's
own restored after it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block on `n` torch threads; the caller's process (a notebook) keeps its own setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's global generators seeded by `seed`; the caller's streams (a notebook's)
    are restored after it, so a seeded library call neither depends on them nor moves them."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def flush_denormal() -> Iterator[None]:
    """Run the block with denormal floats flushed to zero (faster, and the organism build's numbers assume
    it); torch has no getter for the setting, so it is put back to the process default, off."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
