"""How the step runner cuts a convolution's batch over threads
(compiler/backends/numba/lowerings/conv.py, ``_pieces``): images of a few positions
(ResNet's 7x7 and 14x14 layers, whose products take several images side by side)
go in pieces of one product's images, at least one per thread, never the guided
pieces of one or two images; bigger images keep the guided split; a Winograd
forward of more filters than the batch has tiles is split by its filters instead,
to the same values bit for bit. The values
under either split are checked by the threading_mode tests of
test_conv_batched.py and test_conv_fast.py."""

from __future__ import annotations

import numpy as np
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
    14x14 ones; by Winograd 256 tiles: four 16x16 images), at least one per thread,
    all but the last of one size."""
    monkeypatch.setattr(threads, "count", lambda: workers)
    for positions, tiles, product in ((49, 0, 6), (196, 0, 2), (256, 64, 4), (49, 16, 16)):
        images = lconv.product_images(positions, tiles)
        assert images == product
        pieces = lconv._pieces(batch, 10**9, images)
        covers(pieces, batch)
        assert len(pieces) >= min(batch, workers)
        sizes = [hi - lo for lo, hi in pieces]
        assert sizes[0] == min(product, batch // min(batch, workers))
        assert all(size == sizes[0] for size in sizes[:-1]) and sizes[-1] <= sizes[0]


def test_big_images_keep_the_guided_split(monkeypatch):
    monkeypatch.setattr(threads, "count", lambda: 2)
    images = lconv.product_images(lconv.SMALL_IMAGE + 1, 0)
    assert images == 1
    assert lconv._pieces(8, 10**9, images) == threads.split(8, 10**9)
    covers(lconv._pieces(8, 10**9, images), 8)


def geometry(kernel=(3, 3), stride=(1, 1), dilate=(1, 1), pad=(1, 1)):
    return lconv.geometry3(2, kernel, stride, dilate, pad)


def test_winograd_tiles_follow_the_kernels_choice():
    """The step runner's count of an image's Winograd tiles: a 2-D 3x3 kernel at unit
    stride, no dilation, 16 or more channels and filters a group (the kernels'
    _cv_winograd_fits); 0 for every other convolution."""
    assert lconv.winograd_tiles(64, 64, [16, 16], geometry()) == 64
    assert lconv.winograd_tiles(32, 32, [15, 9], geometry()) == 8 * 5  # partial tiles
    assert lconv.winograd_tiles(8, 64, [16, 16], geometry()) == 0  # too few channels
    assert lconv.winograd_tiles(64, 8, [16, 16], geometry()) == 0
    assert lconv.winograd_tiles(64, 64, [8, 8], geometry(stride=(2, 2))) == 0
    assert lconv.winograd_tiles(64, 64, [16, 16], geometry(dilate=(2, 2))) == 0
    assert lconv.winograd_tiles(64, 64, [16, 16], geometry(kernel=(5, 5), pad=(2, 2))) == 0
    three_d = lconv.geometry3(3, (3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1))
    assert lconv.winograd_tiles(64, 64, [4, 16, 16], three_d) == 0


def test_w7_layers_go_in_pieces_of_a_product(monkeypatch):
    """W7's 64-channel 16x16 layer on two threads: its forward and data gradient
    in pieces of four images (one Winograd product of 256 tiles), and its weight
    gradient too (64 x 64 sums: four images' operands fill WINOGRAD_GRAD_CACHED),
    not the guided pieces of one image, whose products of 64 tiles and per-piece
    transforms and partial sums cost 15-30% more CPU time."""
    monkeypatch.setattr(lconv.threads, "count", lambda: 2)
    monkeypatch.setattr(lconv, "PARALLEL_WORK", 0)
    monkeypatch.setattr(lconv, "DEPTHWISE_PARALLEL_WORK", 0)  # as the threads fixture
    seen = []
    monkeypatch.setattr(lconv.threads, "run", lambda kernel, calls: seen.append(calls))
    x = np.zeros((32, 64, 16, 16), np.float32)
    w = np.zeros((64, 64, 3, 3), np.float32)
    geo = geometry()
    lconv._forward(None, x, w, None, [16, 16], 1, geo)
    lconv._transposed(None, x, w, None, x.shape, 1, geo)
    with np.errstate(invalid="ignore", over="ignore"):  # partial sums nothing wrote, added
        lconv._weights(None, x, x, w.shape, 1, geo)
    expected = [(lo, lo + 4) for lo in range(0, 32, 4)]
    assert [[(call[4], call[5]) for call in calls] for calls in seen[:2]] == [expected] * 2
    assert lconv.WINOGRAD_GRAD_CACHED == 1 << 19
    assert [(call[3], call[4]) for call in seen[2]] == expected


def test_the_weight_gradients_products_take_as_many_images_as_the_kernels(conv_kernels):
    """The step runner cuts the batch by the images the weight gradient's Winograd
    products take (``winograd_grad_images``); the kernels decide it again inside
    (``_cv_winograd_grad_images``): the two agree. Small products keep their
    operands within WINOGRAD_GRAD_CACHED values (W7's 64-channel 16x16 layer: four
    images of 64 tiles, not eight), bigger ones take WINOGRAD_GRAD_TILES tiles
    (ResNet's 256-channel 14x14 layer: eleven images of 49)."""
    kernel = conv_kernels._cv_winograd_grad_images
    for cg, fg in [(16, 16), (32, 32), (32, 64), (64, 64), (128, 32), (64, 128), (256, 256)]:
        for tiles in [1, 16, 49, 64, 196, 256, 784]:
            assert kernel(cg, fg, tiles) == lconv.winograd_grad_images(cg, fg, tiles)
    assert lconv.winograd_grad_images(64, 64, 64) == 4
    assert lconv.winograd_grad_images(32, 32, 256) == 2
    assert lconv.winograd_grad_images(256, 256, 49) == 11


def test_depthwise_weight_gradients_go_one_piece_a_thread(monkeypatch):
    """A depthwise weight gradient is split from DEPTHWISE_PARALLEL_WORK on (below
    a dense one's PARALLEL_WORK), one piece of the batch per thread: MobileNet's
    512-channel 14x14 layer at B=8 (7.2M multiply-adds) on two threads, in halves;
    a dense layer of about that work and a depthwise one below the bound, whole."""
    monkeypatch.setattr(lconv.threads, "count", lambda: 2)
    seen = []

    def run(kernel, calls):
        seen.append(calls)
        for call in calls:
            call[2].fill(0)  # the partial sums, added up after

    monkeypatch.setattr(lconv.threads, "run", run)
    whole = []

    def kernel(g, x, out, lo, hi, groups, *geometry):
        whole.append((lo, hi, groups))

    geo = geometry()
    x = np.zeros((8, 512, 14, 14), np.float32)
    lconv._weights(kernel, x, x, (512, 1, 3, 3), 512, geo)
    assert [(call[3], call[4]) for call in seen.pop()] == [(0, 4), (4, 8)]
    dense = np.zeros((8, 64, 14, 14), np.float32)  # 6.4M multiply-adds
    lconv._weights(kernel, dense, dense, (64, 64, 1, 1), 1, geometry(kernel=(1, 1), pad=(0, 0)))
    small = np.zeros((8, 64, 7, 7), np.float32)  # 226K multiply-adds
    lconv._weights(kernel, small, small, (64, 1, 3, 3), 64, geo)
    assert not seen and whole == [(0, 8, 1), (0, 8, 64)]
    assert lconv.parallel_work(512, 512, 512, 9, True) == lconv.DEPTHWISE_PARALLEL_WORK
    assert lconv.parallel_work(512, 512, 1, 9 * 512, True) == lconv.PARALLEL_WORK
    assert lconv.parallel_work(512, 512, 512, 1, True) == lconv.PARALLEL_WORK  # 1x1 a channel
    # one input channel, eight filters (the CNN step's first layer): the weight
    # gradient from the lower bound, the forward and data gradient not
    assert lconv.parallel_work(1, 8, 1, 9, True) == lconv.DEPTHWISE_PARALLEL_WORK
    assert lconv.parallel_work(1, 8, 1, 9, False) == lconv.PARALLEL_WORK
    assert lconv.parallel_work(512, 512, 512, 9, False) == lconv.DEPTHWISE_PARALLEL_WORK


def test_depthwise_forwards_and_data_gradients_split_from_less_work(monkeypatch):
    """A depthwise forward and data gradient go over the threads from
    DEPTHWISE_PARALLEL_WORK on, as the weight gradient: MobileNet's 512-channel
    14x14 layer at B=8 (7.2M multiply-adds) in pieces; a dense layer of about that
    work, whole."""
    monkeypatch.setattr(lconv.threads, "count", lambda: 2)
    split, whole = [], []
    monkeypatch.setattr(lconv.threads, "run", lambda kernel, calls: split.append(calls))

    def kernel(a, w, bias, out, lo, hi, groups, *geometry):
        whole.append((lo, hi, groups))

    geo = geometry()
    x = np.zeros((8, 512, 14, 14), np.float32)
    w = np.zeros((512, 1, 3, 3), np.float32)
    lconv._forward(kernel, x, w, None, [14, 14], 512, geo)
    lconv._transposed(kernel, x, w, None, x.shape, 512, geo)
    assert len(split) == 2 and all(len(calls) > 1 for calls in split) and not whole
    dense = np.zeros((8, 64, 14, 14), np.float32)  # 6.4M multiply-adds
    pointwise = geometry(kernel=(1, 1), pad=(0, 0))
    lconv._forward(
        kernel, dense, np.zeros((64, 64, 1, 1), np.float32), None, [14, 14], 1, pointwise
    )
    assert len(split) == 2 and whole == [(0, 8, 1)]


def test_winograd_forwards_of_many_filters_split_by_filters(monkeypatch):
    """ResNet's 512-channel 7x7 layer (B=8: 128 tiles) and InceptionV3's 448 ->
    384 8x8 one: by filters; its 256-channel 14x14 layer (392 tiles), a non-Winograd
    kernel, a single image or a single thread: by images."""
    monkeypatch.setattr(threads, "count", lambda: 2)
    tiles_7x7 = lconv.winograd_tiles(512, 512, [7, 7], geometry())
    assert tiles_7x7 == 16 and lconv._by_filters(8, 512, tiles_7x7)
    assert lconv._by_filters(8, 384, lconv.winograd_tiles(448, 384, [8, 8], geometry()))
    assert not lconv._by_filters(8, 256, lconv.winograd_tiles(256, 256, [14, 14], geometry()))
    assert not lconv._by_filters(8, 512, 0)
    assert not lconv._by_filters(1, 512, tiles_7x7)
    monkeypatch.setattr(threads, "count", lambda: 1)
    assert not lconv._by_filters(8, 512, tiles_7x7)


@pytest.mark.parametrize("workers", [2, 3])
@pytest.mark.parametrize("bias", [False, True])
def test_a_forward_by_filters_equals_one_by_images(conv_kernels, monkeypatch, workers, bias):
    # 50 filters over 3 images of 4x5 (6 tiles): by filters from two threads on
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (3, 16, 4, 5)).astype(np.float32)
    w = rng.uniform(-1, 1, (50, 16, 3, 3)).astype(np.float32)
    b = rng.uniform(-1, 1, 50).astype(np.float32) if bias else None
    geo = geometry()
    monkeypatch.setattr(lconv, "PARALLEL_WORK", 0)
    monkeypatch.setattr(threads, "count", lambda: 1)
    by_images = lconv._forward(conv_kernels.lib_conv_forward, x, w, b, [4, 5], 1, geo)
    monkeypatch.setattr(threads, "count", lambda: workers)
    assert lconv._by_filters(3, 50, lconv.winograd_tiles(16, 50, [4, 5], geo))
    calls = []
    original = threads.run

    def run(kernel, pieces):
        calls.append([piece[1].shape[0] for piece in pieces])
        original(kernel, pieces)

    monkeypatch.setattr(threads, "run", run)
    by_filters = lconv._forward(conv_kernels.lib_conv_forward, x, w, b, [4, 5], 1, geo)
    assert calls and sum(calls[0]) == 50 and len(calls[0]) == workers
    np.testing.assert_array_equal(by_filters, by_images)
