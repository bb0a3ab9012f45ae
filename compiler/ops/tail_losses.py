"""MXNet's loss-output ops: make_loss and MakeLoss, the three regression outputs
and SVMOutput.

Each is a forward pass (the identity, or the sigmoid) whose backward is not its
derivative but the gradient of a loss MXNet has in mind, and ignores the head
gradient, as MXNet's do: a network ending in one of them is trained by calling
``backward()`` with no head gradient. Their TestSpecs therefore check no
finite differences (``wrt=()``); tests/test_ops_tail_interop.py checks their
gradients against MXNet 1.9.1's. Labels get no gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..expr import Expr
from ..ir import GraphError, TensorType
from ..registry import Attr, OpDef, TestSpec, as_bool, as_float, one_of, register
from .common import F, same_as_first

# ---------------------------------------------------------------------------
# make_loss, MakeLoss
# ---------------------------------------------------------------------------


def make_loss_grad(g: Expr, x: Expr, *, out: Expr) -> Expr:
    """ones: the output is the loss itself"""
    return F.ones_like(x)


register(
    OpDef(
        name="make_loss",
        infer=same_as_first,
        impl=np.copy,
        grad=make_loss_grad,
        kind="shape",
        doc="The identity, marking its input as a loss: its gradient is ones, whatever "
        "the head gradient.\n\nGradient\n--------\nones_like(x)",
        test=TestSpec(wrt=()),
    )
)


def _valid_count(x: np.ndarray, *, valid_thresh: float) -> np.ndarray:
    # how many elements exceed the threshold, at least one (MXNet's 'valid')
    return np.array([max(int((x > valid_thresh).sum()), 1)], dtype=x.dtype)


register(
    OpDef(
        name="_valid_count",
        infer=lambda types, **_attrs: [TensorType((1,), types[0].dtype)],
        impl=_valid_count,
        attrs={"valid_thresh": Attr(as_float, 0.0)},
        differentiable=False,
        kind="reduce",
        doc="How many elements exceed ``valid_thresh`` (at least 1), as a (1,) array: "
        "MakeLoss's 'valid' normalization. No gradient.",
        test=TestSpec(attrs={"valid_thresh": 0.5}),
    )
)


def MakeLoss_grad(
    g: Expr, x: Expr, *, out: Expr, grad_scale: float, valid_thresh: float, normalization: str
) -> Expr:  # noqa: N802
    """grad_scale, divided by the batch size ('batch') or by the count of
    elements above valid_thresh ('valid')"""
    grad = F.ones_like(x) * grad_scale
    if normalization == "batch":
        return grad / F._reduced_size(x, axis=(0,))
    if normalization == "valid":
        return grad / F._valid_count(F.stop_gradient(x), valid_thresh=valid_thresh)
    return grad


register(
    OpDef(
        name="MakeLoss",
        infer=same_as_first,
        impl=lambda x, **_attrs: x.copy(),
        grad=MakeLoss_grad,
        attrs={
            "grad_scale": Attr(as_float, 1.0),
            "valid_thresh": Attr(as_float, 0.0),
            "normalization": Attr(one_of("null", "batch", "valid"), "null"),
        },
        kind="shape",
        doc="The identity, marking its input as a loss; the gradient is grad_scale, "
        "normalised as asked, whatever the head gradient.\n\nGradient\n--------\n"
        + (MakeLoss_grad.__doc__ or ""),
        test=TestSpec(attrs={"grad_scale": 2.0, "normalization": "valid"}, wrt=()),
    )
)


# ---------------------------------------------------------------------------
# LinearRegressionOutput, MAERegressionOutput, LogisticRegressionOutput
# ---------------------------------------------------------------------------


def _regression_types(types: Sequence[TensorType], **_attrs: Any) -> list[TensorType]:
    data, label = types
    if int(np.prod(data.shape)) != int(np.prod(label.shape)) or (
        data.shape and label.shape and data.shape[0] != label.shape[0]
    ):
        raise GraphError(f"label of shape {label.shape} does not fit data {data.shape}")
    return [data]


def _scale(label: Expr, grad_scale: float, dtype: np.dtype) -> Expr:
    """grad_scale / (outputs per sample: label.size / batch size), computed in
    float32 as MXNet does (1/3 is 0.33333334 even for float64 data)."""
    per_sample = F.Cast(F._reduced_size(label, axis=(0,), exclude=True), dtype="float32")
    return F.Cast(F._rdiv_scalar(per_sample, scalar=grad_scale), dtype=dtype.name)


def _difference(out: Expr, label: Expr) -> Expr:
    return out - F.reshape_like(F.Cast(F.stop_gradient(label), dtype=out.dtype.name), out)


def linear_regression_grad(
    g: Expr, data: Expr, label: Expr, *, out: Expr, grad_scale: float
) -> tuple[Expr | None, ...]:
    """(out - label) grad_scale / outputs per sample; none for the label"""
    return _difference(out, label) * _scale(label, grad_scale, out.dtype), None


def mae_regression_grad(
    g: Expr, data: Expr, label: Expr, *, out: Expr, grad_scale: float
) -> tuple[Expr | None, ...]:
    """sign(out - label) grad_scale / outputs per sample; none for the label"""
    return F.sign(_difference(out, label)) * _scale(label, grad_scale, out.dtype), None


def _sigmoid(x: np.ndarray, **_attrs: Any) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (1 / (1 + np.exp(-x))).astype(x.dtype)


def _regression_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.uniform(-2, 2, (3, 4)), rng.uniform(-1, 1, (3, 4))]


for _name, _impl, _rule, _what in (
    ("LinearRegressionOutput", lambda x, **_a: x.copy(), linear_regression_grad, "the identity"),
    ("MAERegressionOutput", lambda x, **_a: x.copy(), mae_regression_grad, "the identity"),
    ("LogisticRegressionOutput", _sigmoid, linear_regression_grad, "the sigmoid"),
):
    register(
        OpDef(
            name=_name,
            infer=_regression_types,
            impl=lambda data, label, _f=_impl, **attrs: _f(data),
            grad=_rule,
            inputs=("data", "label"),
            attrs={"grad_scale": Attr(as_float, 1.0)},
            kind="shape" if _impl is not _sigmoid else "stable",
            doc=f"{_what} forward; the backward is the regression loss's gradient "
            f"(head gradient ignored).\n\nGradient\n--------\n{_rule.__doc__}",
            test=TestSpec(make_inputs=_regression_inputs, wrt=()),
        )
    )


# ---------------------------------------------------------------------------
# SVMOutput
# ---------------------------------------------------------------------------


def _svm_types(types: Sequence[TensorType], **_attrs: Any) -> list[TensorType]:
    data, label = types
    if len(data.shape) < 2 or int(np.prod(label.shape)) * data.shape[1] != int(np.prod(data.shape)):
        raise GraphError(f"label of shape {label.shape} does not fit data {data.shape}")
    return [data]


def svm_grad(
    g: Expr,
    data: Expr,
    label: Expr,
    *,
    out: Expr,
    margin: float,
    regularization_coefficient: float,
    use_linear: bool,
) -> tuple[Expr | None, ...]:
    """per class j of a sample with label y (c: the coefficient, m: the margin):
    L2 (default): 2c max(m + x_j, 0) for j != y, -2c max(m - x_y, 0) for y;
    L1 (use_linear): c (m + x_j > 0) for j != y, -c (m - x_y > 0) for y;
    none for the label"""
    one_hot = F._pick_grad(
        F.ones_like(F.Cast(F.stop_gradient(label), dtype=data.dtype.name)),
        F.stop_gradient(label),
        data,
        axis=1,
        mode="clip",
    )
    # + (m + x_j) for other classes, - (m - x_y) for the label's class
    signed = 1 - 2 * one_hot
    hinge = F.relu(margin + data * signed)
    if use_linear:
        hinge = F.sign(hinge)
    else:
        hinge = hinge * 2
    return hinge * signed * regularization_coefficient, None


def _svm_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.uniform(-2, 2, (4, 3)), rng.integers(0, 3, 4).astype(np.float64)]


register(
    OpDef(
        name="SVMOutput",
        infer=_svm_types,
        impl=lambda data, label, **_attrs: data.copy(),
        grad=svm_grad,
        inputs=("data", "label"),
        attrs={
            "margin": Attr(as_float, 1.0),
            "regularization_coefficient": Attr(as_float, 1.0),
            "use_linear": Attr(as_bool, False),
        },
        kind="shape",
        doc="The identity forward; the backward is the one-vs-all hinge loss's "
        "gradient (squared unless use_linear), head gradient ignored.\n\nGradient\n"
        "--------\n" + (svm_grad.__doc__ or ""),
        test=TestSpec(make_inputs=_svm_inputs, wrt=()),
    )
)


# ---------------------------------------------------------------------------
# IdentityAttachKLSparseReg
# ---------------------------------------------------------------------------


def _feature_axes(ndim: int) -> tuple[int, ...]:
    return tuple(a for a in range(ndim) if a != 1)


def _kl_types(types: Sequence[TensorType], **_attrs: Any) -> list[TensorType]:
    data, moving_avg = types
    if len(data.shape) < 2 or moving_avg.shape != data.shape[1:2]:
        raise GraphError(f"moving_avg must have shape {data.shape[1:2]}, got {moving_avg.shape}")
    return [data]


def _kl_sparse_reg(
    data: np.ndarray,
    moving_avg: np.ndarray,
    *,
    sparseness_target: float,
    penalty: float,
    momentum: float,
    is_train: bool,
) -> np.ndarray:
    # the identity: MXNet 1.9.1 updates the moving average in the backward pass
    # (_kl_sparse_reg_update, in the gradient), never in a forward one
    return data.copy()


def kl_sparse_reg_grad(
    g: Expr,
    data: Expr,
    moving_avg: Expr,
    *,
    out: Expr,
    sparseness_target: float,
    penalty: float,
    momentum: float,
    is_train: bool,
) -> tuple[Expr | None, ...]:
    """g + penalty (-target / avg + (1 - target) / (1 - avg)), avg the moving average
    activation of each feature (axis 1) after this backward pass updated it with
    data's mean (as MXNet's backward does, once per pass); none for the average"""
    avg = F._kl_sparse_reg_update(data, moving_avg, momentum=momentum)
    term = (-sparseness_target / avg + (1 - sparseness_target) / (1 - avg)) * penalty
    shape = (1, -1) + (1,) * (data.ndim - 2)
    return g + F.broadcast_like(F.reshape(term, shape=shape), data), None


def _kl_inputs(rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.uniform(0.1, 0.9, (4, 3)), np.full(3, 0.5)]


register(
    OpDef(
        name="IdentityAttachKLSparseReg",
        infer=_kl_types,
        impl=_kl_sparse_reg,
        grad=kl_sparse_reg_grad,
        inputs=("data", "moving_avg"),
        aux=("moving_avg",),
        uses_train_mode=True,
        attrs={
            "sparseness_target": Attr(as_float, 0.1),
            "penalty": Attr(as_float, 0.001),
            "momentum": Attr(as_float, 0.9),
            "is_train": Attr(as_bool, False),
        },
        kind="norm",
        doc="The identity, whose gradient adds a KL sparseness penalty pulling each "
        "feature's moving average activation towards sparseness_target (the average "
        "is updated by each backward pass).\n\nGradient\n--------\n"
        + (kl_sparse_reg_grad.__doc__ or ""),
        test=TestSpec(make_inputs=_kl_inputs, attrs={"is_train": True}, wrt=()),
    )
)


def _kl_sparse_reg_update(
    data: np.ndarray, moving_avg: np.ndarray, *, momentum: float
) -> np.ndarray:
    # In place, as BatchNorm's statistics: moving_avg is the auxiliary array itself
    # (an executor's aux_dict entry, or the NDArray given to nd), which MXNet's
    # backward updates.
    mean = data.mean(axis=_feature_axes(data.ndim))
    moving_avg *= momentum
    moving_avg += (1 - momentum) * mean
    return moving_avg.copy()


register(
    OpDef(
        name="_kl_sparse_reg_update",
        infer=lambda types, *, momentum: [types[1]],
        impl=_kl_sparse_reg_update,
        inputs=("data", "moving_avg"),
        attrs={"momentum": Attr(as_float, 0.9)},
        differentiable=False,
        kind="opaque",
        doc="Update ``moving_avg`` in place to momentum moving_avg + (1 - momentum) "
        "mean(data) (the mean over all axes but 1) and return its new value: "
        "IdentityAttachKLSparseReg's backward step. No gradient.",
        test=TestSpec(make_inputs=_kl_inputs),
    )
)
