"""The ``Optimizer`` base class: learning rates, weight decay, multipliers, update
counts, multi-precision, and the registry behind ``mx.optimizer.create``.

Its attributes are MXNet 1.x's, by the same names, so that a pickled optimizer
(the Trainer's states file holds one) reads in real MXNet and back.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .. import ndarray as nd
from ..ndarray import NDArray

__all__ = ["Optimizer", "register", "create"]


class Optimizer:
    """Base class of optimizers; subclasses define ``create_state`` and ``update``.

    Parameters
    ----------
    rescale_grad : float
        Every gradient is multiplied by this first (a Trainer sets 1/batch_size).
    param_idx2name : dict of int to str, optional
        Parameter names by index, for the multipliers set by name.
    wd : float
        Weight decay (L2 penalty) coefficient.
    clip_gradient : float, optional
        Clip the rescaled gradient to [-clip_gradient, clip_gradient].
    learning_rate : float, optional
        The learning rate (0.01 when neither it nor a scheduler is given).
    lr_scheduler : LRScheduler, optional
        Gives the learning rate from the update count.
    sym : Symbol, optional
        Its ``__lr_mult__``/``__wd_mult__`` attributes set multipliers by name.
    begin_num_update : int
        The update count to start from.
    multi_precision : bool
        Keep a float32 master copy of float16 weights and update that.
    param_dict : dict of int to Parameter, optional
        Parameters by index, whose ``lr_mult``/``wd_mult`` take precedence.
    """

    opt_registry: dict[str, type] = {}

    def __init__(
        self,
        rescale_grad: float = 1.0,
        param_idx2name: dict | None = None,
        wd: float = 0.0,
        clip_gradient: float | None = None,
        learning_rate: float | None = None,
        lr_scheduler: Any = None,
        sym: Any = None,
        begin_num_update: int = 0,
        multi_precision: bool = False,
        param_dict: dict | None = None,
    ):
        self.rescale_grad = rescale_grad
        self.lr_scheduler = lr_scheduler
        if self.lr_scheduler is None and learning_rate is None:
            learning_rate = 0.01
        self.lr = learning_rate
        if self.lr_scheduler is not None and learning_rate is not None:
            if self.lr_scheduler.base_lr != learning_rate:
                print(
                    UserWarning(
                        "learning rate from ``lr_scheduler`` has been overwritten "
                        "by ``learning_rate`` in optimizer."
                    )
                )
                self.lr_scheduler.base_lr = learning_rate
        self.wd = wd
        self.lr_mult: dict = {}
        self.wd_mult: dict = {}
        self.begin_num_update = begin_num_update
        self.num_update = begin_num_update
        # one count per device in MXNet; here one device, shared by both names
        self._all_index_update_counts: dict = {0: {}}
        self._index_update_count = self._all_index_update_counts[0]
        self.clip_gradient = clip_gradient
        self.multi_precision = multi_precision
        self.aggregate_num = 0
        if param_idx2name is None:
            param_idx2name = {}
        if not isinstance(param_idx2name, dict):
            raise AssertionError("param_idx2name should be a dict of param indexes to names.")
        self.idx2name = param_idx2name.copy()
        self.sym_info = (sym.attr_dict(), sym.list_arguments()) if sym is not None else ()
        self.param_dict = param_dict if param_dict else {}
        self.allow_np_array = False
        self.set_lr_mult({})
        self.set_wd_mult({})

    # -- the registry ---------------------------------------------------------
    @staticmethod
    def register(klass: type) -> type:
        """Register an optimizer class under its lower-cased name (a decorator).

        >>> import symgrad as mx
        >>> @mx.optimizer.register
        ... class Plain(mx.optimizer.Optimizer):
        ...     pass
        >>> type(mx.optimizer.create("plain")).__name__
        'Plain'
        >>> del mx.optimizer.Optimizer.opt_registry["plain"]
        """
        if not isinstance(klass, type):
            raise AssertionError("register needs a class")
        name = klass.__name__.lower()
        if name in Optimizer.opt_registry:
            warnings.warn(
                f"WARNING: New optimizer {klass.__module__}.{klass.__name__} is "
                f"overriding existing optimizer "
                f"{Optimizer.opt_registry[name].__module__}."
                f"{Optimizer.opt_registry[name].__name__}",
                stacklevel=2,
            )
        Optimizer.opt_registry[name] = klass
        return klass

    @staticmethod
    def create_optimizer(name: str, **kwargs: Any) -> Optimizer:
        """An instance of the optimizer registered as ``name`` (any case)."""
        if name.lower() in Optimizer.opt_registry:
            return Optimizer.opt_registry[name.lower()](**kwargs)
        raise ValueError(f"Cannot find optimizer {name}")

    # -- states -----------------------------------------------------------------
    def create_state(self, index: int, weight: NDArray) -> Any:
        """The auxiliary state of one weight (None, an NDArray or a tuple)."""

    def create_state_multi_precision(self, index: int, weight: NDArray) -> Any:
        """``create_state``, with a float32 master copy first for float16 weights
        under ``multi_precision``: ``(weight32, state of weight32)``."""
        if self.multi_precision and weight.dtype == np.float16:
            master = weight.astype(np.float32)
            return (master, self.create_state(index, master))
        if weight.dtype == np.float16 and not self.multi_precision:
            warnings.warn(
                "Accumulating with float16 in optimizer can lead to poor accuracy "
                "or slow convergence. Consider using multi_precision=True option "
                "of the optimizer",
                stacklevel=2,
            )
        return self.create_state(index, weight)

    def update(self, index: int, weight: NDArray, grad: NDArray, state: Any) -> None:
        """Update ``weight`` in place from ``grad`` and ``state``."""
        raise NotImplementedError()

    def update_multi_precision(
        self, index: int, weight: NDArray, grad: NDArray, state: Any
    ) -> None:
        """``update``; for float16 weights under ``multi_precision``, update the
        float32 master copy with the float32 gradient and cast it into ``weight``."""
        if self.multi_precision and weight.dtype == np.float16:
            master, original_state = state
            self.update(index, master, grad.astype(np.float32), original_state)
            nd.Cast(master, dtype=weight.dtype, out=weight)
        else:
            self.update(index, weight, grad, state)

    # -- learning rate and multipliers ------------------------------------------
    def set_learning_rate(self, lr: float) -> None:
        """Set the learning rate (refused when a scheduler sets it)."""
        if self.lr_scheduler is not None:
            raise UserWarning(
                "LRScheduler of the optimizer has already been defined. Note "
                "that set_learning_rate can mutate the value of the learning "
                "rate of the optimizer only when the LRScheduler of the "
                "optimizer is undefined."
            )
        self.lr = lr

    @property
    def learning_rate(self) -> float:
        """The current learning rate (the scheduler's at ``num_update``)."""
        if self.lr_scheduler is not None:
            return self.lr_scheduler(self.num_update)
        return self.lr

    def _multipliers_from_symbol(self, key: str) -> dict:
        found = {}
        if self.sym_info:
            attr, arg_names = self.sym_info
            for name in arg_names:
                if name in attr and key in attr[name]:
                    found[name] = float(attr[name][key])
        return found

    def set_lr_scale(self, args_lrscale: dict) -> None:
        """Removed in MXNet 1.x (use ``set_lr_mult``): raises DeprecationWarning, as
        MXNet does."""
        raise DeprecationWarning

    def set_lr_mult(self, args_lr_mult: dict) -> None:
        """Learning-rate multipliers by parameter name or index (a symbol's
        ``__lr_mult__`` attributes first, then these)."""
        self.lr_mult = self._multipliers_from_symbol("__lr_mult__")
        self.lr_mult.update(args_lr_mult)

    def set_wd_mult(self, args_wd_mult: dict) -> None:
        """Weight-decay multipliers by parameter name or index. Named parameters
        that are not weights or gammas (biases, betas) default to 0, as in MXNet."""
        self.wd_mult = {}
        for name in self.idx2name.values():
            if not (name.endswith("_weight") or name.endswith("_gamma")):
                self.wd_mult[name] = 0.0
        self.wd_mult.update(self._multipliers_from_symbol("__wd_mult__"))
        self.wd_mult.update(args_wd_mult)

    def _update_count(self, index: int | list) -> None:
        """Count one more update of each index; ``num_update`` is the largest count."""
        for idx in index if isinstance(index, (list, tuple)) else [index]:
            if idx not in self._index_update_count:
                self._index_update_count[idx] = self.begin_num_update
            self._index_update_count[idx] += 1
            self.num_update = max(self._index_update_count[idx], self.num_update)

    def _count_update(self, index: int) -> tuple[float, float]:
        """Count one more update of ``index`` (before its learning rate is read, as
        a scheduler reads ``num_update``); its learning rate and weight decay."""
        self._update_count(index)
        return self._get_lr(index), self._get_wd(index)

    def _multiplier(self, index: int, by_name: dict, attribute: str) -> float:
        if index in self.param_dict:
            return getattr(self.param_dict[index], attribute)
        if index in by_name:
            return by_name[index]
        if index in self.idx2name:
            return by_name.get(self.idx2name[index], 1.0)
        return 1.0

    def _get_lr(self, index: int) -> float:
        """lr (or the scheduler's) times the parameter's lr_mult."""
        lr = self.lr_scheduler(self.num_update) if self.lr_scheduler is not None else self.lr
        return lr * self._multiplier(index, self.lr_mult, "lr_mult")

    def _get_lrs(self, indices: list[int]) -> list[float]:
        return [self._get_lr(index) for index in indices]

    def _get_wd(self, index: int) -> float:
        """wd times the parameter's wd_mult."""
        return self.wd * self._multiplier(index, self.wd_mult, "wd_mult")

    def _get_wds(self, indices: list[int]) -> list[float]:
        return [self._get_wd(index) for index in indices]

    # -- helpers for subclasses -------------------------------------------------
    def _prepared_grad(
        self, grad: NDArray, weight: NDArray | None = None, wd: float = 0.0
    ) -> NDArray:
        """rescale_grad * grad (+ wd * weight), then clipped if clip_gradient is set."""
        grad = grad * self.rescale_grad
        if weight is not None:
            grad = grad + wd * weight
        if self.clip_gradient is not None:
            grad = nd.clip(grad, -self.clip_gradient, self.clip_gradient)
        return grad

    def _grad_kwargs(self) -> dict:
        """rescale_grad, and clip_gradient when set (MXNet tests it for truth)."""
        kwargs: dict[str, Any] = {"rescale_grad": self.rescale_grad}
        if self.clip_gradient:
            kwargs["clip_gradient"] = self.clip_gradient
        return kwargs

    # -- pickling, as MXNet: the Parameters are not part of the state ------------
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("param_dict", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.param_dict = {}


register = Optimizer.register
create = Optimizer.create_optimizer


def zeros_like_weight(weight: NDArray, dtype: Any = None) -> NDArray:
    """A zero state of ``weight``'s shape (in its dtype unless given)."""
    return nd.zeros(weight.shape, dtype=dtype or weight.dtype)
