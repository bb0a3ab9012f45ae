"""gluon.nn's convolution, transposed convolution, pooling and padding layers.

Forward values against direct numpy references (a sum over kernel offsets for
convolutions, a scatter for transposed ones, explicit windows for pooling),
gradients against float64 finite differences, hybridized equal to imperative,
MXNet's reprs and names, deferred in_channels, and second order through Conv2D.
The checks are those of test_gluon_nn.py.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from test_gluon_nn import (
    RNG,
    analytic,
    check_gradients,
    check_layer,
    check_second_order,
    data,
    local_params,
    setup_layer,
)

from symgrad import nd
from symgrad.gluon import nn

# ---------------------------------------------------------------------------
# numpy references
# ---------------------------------------------------------------------------


def conv_reference(x, weight, bias=None, stride=1, pad=0, dilate=1, groups=1):
    """out[n, f, o] = sum over the group's channels c and offsets k of
    xpad[n, c, o * stride + k * dilate] * weight[f, c, k] (+ bias[f])."""
    rank = x.ndim - 2
    stride, pad, dilate = ((v,) * rank if isinstance(v, int) else v for v in (stride, pad, dilate))
    kernel = weight.shape[2:]
    xpad = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in pad])
    out_sizes = [
        (s + 2 * p - d * (k - 1) - 1) // st + 1
        for s, p, d, k, st in zip(x.shape[2:], pad, dilate, kernel, stride)
    ]
    filters, per_group = weight.shape[0], x.shape[1] // groups
    out = np.zeros((x.shape[0], filters, *out_sizes))
    for f in range(filters):
        group = f // (filters // groups)
        channels = slice(group * per_group, (group + 1) * per_group)
        for offset in itertools.product(*(range(k) for k in kernel)):
            window = tuple(
                slice(k * d, k * d + st * (o - 1) + 1, st)
                for k, d, st, o in zip(offset, dilate, stride, out_sizes)
            )
            patch = xpad[(slice(None), channels) + window]
            out[:, f] += np.einsum("nc...,c->n...", patch, weight[(f, slice(None)) + offset])
    if bias is not None:
        out += bias.reshape((1, -1) + (1,) * rank)
    return out


def deconv_reference(x, weight, bias=None, stride=1, pad=0, adj=0, dilate=1, groups=1):
    """Each input element x[n, c, i] adds x * weight[c, f, k] at output position
    i * stride + k * dilate - pad; output size (i-1) s - 2p + d (k-1) + 1 + adj."""
    rank = x.ndim - 2
    stride, pad, adj, dilate = (
        (v,) * rank if isinstance(v, int) else v for v in (stride, pad, adj, dilate)
    )
    kernel = weight.shape[2:]
    per_group_out = weight.shape[1]
    filters = per_group_out * groups
    per_group_in = x.shape[1] // groups
    full = [
        (s - 1) * st + d * (k - 1) + 1 for s, st, d, k in zip(x.shape[2:], stride, dilate, kernel)
    ]
    sizes = [f - 2 * p + a for f, p, a in zip(full, pad, adj)]
    canvas = np.zeros((x.shape[0], filters, *[f + a for f, a in zip(full, adj)]))
    for c in range(x.shape[1]):
        group = c // per_group_in
        targets = slice(group * per_group_out, (group + 1) * per_group_out)
        for offset in itertools.product(*(range(k) for k in kernel)):
            window = tuple(
                slice(k * d, k * d + st * (s - 1) + 1, st)
                for k, d, st, s in zip(offset, dilate, stride, x.shape[2:])
            )
            canvas[(slice(None), targets) + window] += np.einsum(
                "n...,f->nf...", x[:, c], weight[(c, slice(None)) + offset]
            )
    out = canvas[(slice(None), slice(None)) + tuple(slice(p, p + s) for p, s in zip(pad, sizes))]
    if bias is not None:
        out = out + bias.reshape((1, -1) + (1,) * rank)
    return out


def pool_reference(x, kernel, stride, pad, pool_type, ceil_mode=False, count_include_pad=True):
    """Explicit windows: for each output position the window's elements inside
    the padded input; max ignores the padding, avg divides by the elements in
    the padded input (count_include_pad) or in the input alone."""
    rank = x.ndim - 2
    rounding = math.ceil if ceil_mode else math.floor
    outs = [
        int(rounding((s + 2 * p - k) / st)) + 1
        for s, p, k, st in zip(x.shape[2:], pad, kernel, stride)
    ]
    out = np.zeros(x.shape[:2] + tuple(outs))
    for position in itertools.product(*(range(o) for o in outs)):
        starts = [o * st - p for o, st, p in zip(position, stride, pad)]
        padded = [
            (max(b, -p), min(b + k, s + p)) for b, k, s, p in zip(starts, kernel, x.shape[2:], pad)
        ]
        inside = [(max(b, 0), min(e, s)) for (b, e), s in zip(padded, x.shape[2:])]
        window = x[(slice(None), slice(None)) + tuple(slice(b, e) for b, e in inside)]
        axes = tuple(range(2, 2 + rank))
        if pool_type == "max":
            out[(slice(None), slice(None)) + position] = window.max(axis=axes)
        else:
            region = padded if count_include_pad else inside
            count = np.prod([e - b for b, e in region])
            out[(slice(None), slice(None)) + position] = window.sum(axis=axes) / count
    return out


# ---------------------------------------------------------------------------
# convolutions
# ---------------------------------------------------------------------------

CONVS = [
    ("1d", nn.Conv1D, (2, 4, 7), dict(channels=6, kernel_size=3, strides=2, padding=1)),
    (
        "1d-dilated-groups",
        nn.Conv1D,
        (2, 4, 9),
        dict(channels=4, kernel_size=2, dilation=3, groups=2),
    ),
    ("2d", nn.Conv2D, (2, 3, 5, 6), dict(channels=4, kernel_size=(3, 2))),
    (
        "2d-all",
        nn.Conv2D,
        (2, 4, 6, 7),
        dict(
            channels=6,
            kernel_size=(3, 2),
            strides=(2, 1),
            padding=(1, 0),
            dilation=(1, 2),
            groups=2,
        ),
    ),
    (
        "2d-nobias-relu",
        nn.Conv2D,
        (1, 2, 5, 5),
        dict(channels=3, kernel_size=3, padding=1, use_bias=False, activation="tanh"),
    ),
    (
        "3d",
        nn.Conv3D,
        (1, 2, 4, 5, 4),
        dict(channels=3, kernel_size=(2, 3, 2), strides=(1, 2, 1), padding=(1, 0, 1)),
    ),
]


@pytest.mark.parametrize("name, layer_class, shape, kwargs", CONVS, ids=[c[0] for c in CONVS])
def test_convolution(name, layer_class, shape, kwargs):
    x = data(*shape)
    rank = len(shape) - 2
    groups = kwargs.get("groups", 1)
    kernel = kwargs["kernel_size"]
    kernel = (kernel,) * rank if isinstance(kernel, int) else kernel
    weight = data(kwargs["channels"], shape[1] // groups, *kernel)
    values = {"weight": weight}
    if kwargs.get("use_bias", True):
        values["bias"] = data(kwargs["channels"])
    activation = np.tanh if kwargs.get("activation") == "tanh" else (lambda v: v)

    def reference(x, weight, bias=None):
        return activation(
            conv_reference(
                x,
                weight,
                bias,
                kwargs.get("strides", 1),
                kwargs.get("padding", 0),
                kwargs.get("dilation", 1),
                groups,
            )
        )

    check_layer(layer_class(**kwargs), x, reference, values)


TRANSPOSED = [
    ("1d", nn.Conv1DTranspose, (2, 4, 5), dict(channels=3, kernel_size=3, strides=2)),
    (
        "1d-pad-outpad",
        nn.Conv1DTranspose,
        (2, 2, 5),
        dict(channels=3, kernel_size=3, strides=2, padding=1, output_padding=1),
    ),
    (
        "2d-all",
        nn.Conv2DTranspose,
        (2, 4, 3, 4),
        dict(
            channels=6,
            kernel_size=(3, 2),
            strides=(2, 1),
            padding=(1, 0),
            output_padding=(1, 0),
            dilation=(1, 2),
            groups=2,
        ),
    ),
    (
        "3d",
        nn.Conv3DTranspose,
        (1, 2, 2, 3, 2),
        dict(channels=2, kernel_size=2, strides=(2, 1, 1), use_bias=False),
    ),
]


@pytest.mark.parametrize(
    "name, layer_class, shape, kwargs", TRANSPOSED, ids=[c[0] for c in TRANSPOSED]
)
def test_transposed_convolution(name, layer_class, shape, kwargs):
    x = data(*shape)
    rank = len(shape) - 2
    groups = kwargs.get("groups", 1)
    kernel = kwargs["kernel_size"]
    kernel = (kernel,) * rank if isinstance(kernel, int) else kernel
    values = {"weight": data(shape[1], kwargs["channels"] // groups, *kernel)}
    if kwargs.get("use_bias", True):
        values["bias"] = data(kwargs["channels"])

    def reference(x, weight, bias=None):
        return deconv_reference(
            x,
            weight,
            bias,
            kwargs.get("strides", 1),
            kwargs.get("padding", 0),
            kwargs.get("output_padding", 0),
            kwargs.get("dilation", 1),
            groups,
        )

    check_layer(layer_class(**kwargs), x, reference, values)


@pytest.mark.parametrize("hybridize", [False, True])
@pytest.mark.parametrize(
    "make, shape, weight",
    [
        (lambda: nn.Conv2D(5, 3, groups=1), (2, 4, 6, 6), (5, 4, 3, 3)),
        (lambda: nn.Conv2D(4, 3, groups=2), (2, 6, 6, 6), (4, 3, 3, 3)),
        (lambda: nn.Conv1D(2, 2), (1, 3, 4), (2, 3, 2)),
        (lambda: nn.Conv2DTranspose(4, 3, groups=2), (2, 6, 3, 3), (6, 2, 3, 3)),
        (lambda: nn.Conv3DTranspose(2, 2), (1, 3, 2, 2, 2), (3, 2, 2, 2, 2)),
    ],
)
def test_deferred_in_channels(make, shape, weight, hybridize):
    layer = make()
    assert 0 in layer.weight.shape
    layer.initialize()
    if hybridize:
        layer.hybridize()
    layer(nd.array(data(*shape)))
    assert layer.weight.shape == weight and layer.weight.data().shape == weight


REPRS = [
    (lambda: nn.Conv1D(4, 3), "Conv1D(None -> 4, kernel_size=(3,), stride=(1,))"),
    (
        lambda: nn.Conv2D(
            8,
            3,
            strides=2,
            padding=1,
            dilation=2,
            groups=2,
            activation="relu",
            use_bias=False,
            in_channels=4,
        ),
        "Conv2D(2 -> 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), dilation=(2, 2), "
        "groups=2, bias=False, Activation(relu))",
    ),
    (lambda: nn.Conv3D(4, (1, 2, 3)), "Conv3D(None -> 4, kernel_size=(1, 2, 3), stride=(1, 1, 1))"),
    (
        lambda: nn.Conv2DTranspose(8, 3, output_padding=1, strides=2),
        "Conv2DTranspose(8 -> 0, kernel_size=(3, 3), stride=(2, 2))",
    ),
    (
        lambda: nn.Conv2DTranspose(8, 3, in_channels=4, groups=2),
        "Conv2DTranspose(4 -> 4, kernel_size=(3, 3), stride=(1, 1), groups=2)",
    ),
    (
        lambda: nn.MaxPool1D(),
        "MaxPool1D(size=(2,), stride=(2,), padding=(0,), ceil_mode=False, "
        "global_pool=False, pool_type=max, layout=NCW)",
    ),
    (
        lambda: nn.AvgPool2D(3, 1, 1, ceil_mode=True, count_include_pad=False),
        "AvgPool2D(size=(3, 3), stride=(1, 1), padding=(1, 1), ceil_mode=True, "
        "global_pool=False, pool_type=avg, layout=NCHW)",
    ),
    (
        lambda: nn.MaxPool3D(),
        "MaxPool3D(size=(2, 2, 2), stride=(2, 2, 2), padding=(0, 0, 0), "
        "ceil_mode=False, global_pool=False, pool_type=max, layout=NCDHW)",
    ),
    (
        lambda: nn.GlobalAvgPool2D(),
        "GlobalAvgPool2D(size=(1, 1), stride=(1, 1), "
        "padding=(0, 0), ceil_mode=True, global_pool=True, "
        "pool_type=avg, layout=NCHW)",
    ),
    (lambda: nn.ReflectionPad2D(2), "ReflectionPad2D(\n\n)"),
]


@pytest.mark.parametrize(
    "make, text", REPRS, ids=[t.split("(")[0] + str(i) for i, (_, t) in enumerate(REPRS)]
)
def test_repr_as_mxnet_prints_it(make, text):
    assert repr(make()) == text


def test_names_and_layouts():
    conv = nn.Conv2D(3, 2)
    assert conv.prefix.startswith("conv") and sorted(local_params(conv)) == ["bias", "weight"]
    assert nn.Conv2DTranspose(3, 2).prefix.startswith("conv")
    assert nn.AvgPool1D().prefix.startswith("pool")
    assert nn.Conv2D(3, 2, activation="relu").act.prefix.endswith("relu_")
    with pytest.raises(ValueError, match="channel-first"):
        nn.Conv2D(3, 2, layout="NHWC")
    with pytest.raises(ValueError, match="channel-first"):
        nn.MaxPool1D(layout="NWC")
    with pytest.raises(AssertionError):
        nn.Conv2D(3, (2, 2, 2))


@pytest.mark.parametrize("hybridize", [False, True])
def test_second_order_through_conv2d(hybridize):
    layer = setup_layer(
        nn.Conv2D(2, 2, strides=1, padding=1, activation="tanh"),
        {"weight": data(2, 3, 2, 2) * 0.5, "bias": data(2)},
    )
    if hybridize:
        layer.hybridize()
    check_second_order(layer, data(2, 3, 3, 3))


# ---------------------------------------------------------------------------
# pooling
# ---------------------------------------------------------------------------

POOLS = [
    ("max1d", nn.MaxPool1D, (2, 3, 7), dict(), "max"),
    (
        "max2d-stride-pad",
        nn.MaxPool2D,
        (2, 2, 7, 6),
        dict(pool_size=3, strides=2, padding=1),
        "max",
    ),
    ("max2d-ceil", nn.MaxPool2D, (1, 2, 7, 7), dict(pool_size=2, ceil_mode=True), "max"),
    ("max3d", nn.MaxPool3D, (1, 2, 4, 4, 6), dict(), "max"),
    ("avg1d", nn.AvgPool1D, (2, 3, 8), dict(pool_size=3, strides=1, padding=1), "avg"),
    ("avg2d", nn.AvgPool2D, (2, 2, 6, 6), dict(), "avg"),
    (
        "avg2d-exclude-pad",
        nn.AvgPool2D,
        (2, 2, 5, 6),
        dict(pool_size=3, strides=2, padding=1, count_include_pad=False),
        "avg",
    ),
    ("avg3d-pad", nn.AvgPool3D, (1, 2, 4, 4, 4), dict(pool_size=2, padding=1), "avg"),
]


@pytest.mark.parametrize(
    "name, layer_class, shape, kwargs, pool_type", POOLS, ids=[p[0] for p in POOLS]
)
def test_pooling(name, layer_class, shape, kwargs, pool_type):
    rank = len(shape) - 2
    # distinct values, so that every window has one maximum (max pooling's
    # gradient is then smooth around x, as finite differences need)
    x = RNG.permutation(np.prod(shape)).reshape(shape) / 7.0
    size = kwargs.get("pool_size", 2)
    size = (size,) * rank if isinstance(size, int) else size
    stride = kwargs.get("strides") or size
    stride = (stride,) * rank if isinstance(stride, int) else stride
    pad = (kwargs.get("padding", 0),) * rank

    def reference(x):
        return pool_reference(
            x,
            size,
            stride,
            pad,
            pool_type,
            kwargs.get("ceil_mode", False),
            kwargs.get("count_include_pad", True),
        )

    check_layer(layer_class(**kwargs), x, reference)


@pytest.mark.parametrize(
    "layer_class, rank, pool_type",
    [
        (nn.GlobalMaxPool1D, 1, "max"),
        (nn.GlobalMaxPool2D, 2, "max"),
        (nn.GlobalMaxPool3D, 3, "max"),
        (nn.GlobalAvgPool1D, 1, "avg"),
        (nn.GlobalAvgPool2D, 2, "avg"),
        (nn.GlobalAvgPool3D, 3, "avg"),
    ],
)
def test_global_pooling(layer_class, rank, pool_type):
    shape = (2, 3) + (4, 3, 2)[:rank]
    x = RNG.permutation(np.prod(shape)).reshape(shape) / 5.0
    axes = tuple(range(2, 2 + rank))
    reduce = np.max if pool_type == "max" else np.mean
    check_layer(layer_class(), x, lambda x: reduce(x, axis=axes, keepdims=True))


# ---------------------------------------------------------------------------
# padding
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "padding, widths",
    [
        (2, [(0, 0), (0, 0), (2, 2), (2, 2)]),
        ((0, 0, 0, 0, 1, 2, 0, 3), [(0, 0), (0, 0), (1, 2), (0, 3)]),
    ],
)
def test_reflection_pad2d(padding, widths):
    x = data(2, 3, 4, 5)
    check_layer(nn.ReflectionPad2D(padding), x, lambda x: np.pad(x, widths, mode="reflect"))


def test_a_small_cnn_hybridized_equals_imperative():
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(
            nn.Conv2D(4, 3, padding=1, activation="relu"),
            nn.BatchNorm(),
            nn.MaxPool2D(),
            nn.Conv2D(3, 2),
            nn.GlobalAvgPool2D(),
            nn.Flatten(),
            nn.Dense(2),
        )
    x = data(2, 3, 6, 6)
    setup_layer(net)
    net(nd.array(x, dtype="float64"))  # deferred shapes
    head = data(2, 2)
    imperative = analytic(net, x, head, train=True)
    check_gradients(net, x, train=True, rtol=1e-5)
    net.hybridize()
    hybrid = analytic(net, x, head, train=True)
    np.testing.assert_allclose(hybrid[0], imperative[0], rtol=1e-12)
    np.testing.assert_allclose(hybrid[1], imperative[1], rtol=1e-10, atol=1e-13)
    for name in imperative[2]:
        np.testing.assert_allclose(
            hybrid[2][name], imperative[2][name], rtol=1e-10, atol=1e-13, err_msg=name
        )


@pytest.mark.slow  # compiles numba kernels: about 12 s
def test_hybridized_layers_on_the_compiled_backend_equal_imperative(compiled):
    """The numba backend runs hybridized layers (forward, and forward + backward
    inside a recording) to the interpreter's imperative numbers."""
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(
            nn.Conv2D(3, 3, padding=1, activation="relu"),
            nn.BatchNorm(),
            nn.AvgPool2D(),
            nn.Flatten(),
            nn.Dense(4, activation="tanh"),
            nn.LayerNorm(),
            nn.Dense(2),
        )
    x = data(2, 2, 4, 4)
    setup_layer(net)
    net(nd.array(x, dtype="float64"))
    head = data(2, 2)
    imperative = analytic(net, x, head, train=True)
    net.hybridize()
    for _ in range(2):  # the second call runs the cached program
        hybrid = analytic(net, x, head, train=True)
        np.testing.assert_allclose(hybrid[0], imperative[0], rtol=1e-10)
        np.testing.assert_allclose(hybrid[1], imperative[1], rtol=1e-9, atol=1e-12)
        for name in imperative[2]:
            np.testing.assert_allclose(
                hybrid[2][name], imperative[2][name], rtol=1e-9, atol=1e-12, err_msg=name
            )
