"""How the step runner cuts a convolution's batch over threads
(compiler/backends/numba/lowerings/conv.py, ``_pieces``): images of a few positions
(ResNet's 7x7 and 14x14 layers, whose products take several images side by side)
go in pieces of one product's images, at least one per thread, never the guided
pieces of one or two images; bigger images keep the guided split. The values
under either split are checked by the threading_mode tests of
test_conv_batched.py and test_conv_fast.py."""

from __future__ import annotations

import pytest

from symgrad_compiler.backends.numba import threads
from symgrad_compiler.backends.numba.lowerings import conv as lconv


def covers(pieces, batch):
    """The pieces are contiguous, in order, non-empty, and cover the batch."""
    assert pieces[0][0] == 0 and pieces[-1][1] == batch
    assert all(lo < hi for lo, hi in pieces)
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))


@pytest.mark.parametrize("workers", [2, 3, 4])
@pytest.mark.parametrize("batch", [2, 3, 8, 9, 64])
def test_small_images_get_pieces_of_a_product(monkeypatch, workers, batch):
    """Pieces of the images one product takes (256 positions: six 7x7 images, two
    14x14 ones), at least one per thread, all but the last of one size."""
    monkeypatch.setattr(threads, "count", lambda: workers)
    for positions, product in ((49, 6), (196, 2), (lconv.SMALL_IMAGE, 1)):
        pieces = lconv._pieces(batch, 10**9, positions)
        covers(pieces, batch)
        assert len(pieces) >= min(batch, workers)
        sizes = [hi - lo for lo, hi in pieces]
        assert sizes[0] == min(product, batch // min(batch, workers))
        assert all(size == sizes[0] for size in sizes[:-1]) and sizes[-1] <= sizes[0]


def test_big_images_keep_the_guided_split(monkeypatch):
    monkeypatch.setattr(threads, "count", lambda: 2)
    positions = lconv.SMALL_IMAGE + 1
    assert lconv._pieces(8, 10**9, positions) == threads.split(8, 10**9)
    covers(lconv._pieces(8, 10**9, positions), 8)
