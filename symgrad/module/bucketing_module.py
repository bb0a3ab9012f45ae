"""``BucketingModule``: one Module per bucket (sequence length, say), all sharing
their parameters, optimizer and updater (MXNet 1.x's ``mx.mod.BucketingModule``).

``sym_gen(bucket_key)`` returns ``(symbol, data_names, label_names)`` for a
bucket; a batch's ``bucket_key`` picks (and on first sight binds) its module.

>>> import numpy as np, symgrad as mx
>>> def sym_gen(length):
...     data = mx.sym.var("data")
...     pooled = mx.sym.mean(mx.sym.Embedding(data, input_dim=5, output_dim=2,
...                                           name="embed"), axis=1)
...     net = mx.sym.FullyConnected(pooled, num_hidden=2, name="fc")
...     return mx.sym.SoftmaxOutput(net, name="softmax"), ["data"], ["softmax_label"]
>>> mod = mx.mod.BucketingModule(sym_gen, default_bucket_key=4)
>>> mod.bind([("data", (2, 4))], [("softmax_label", (2,))])
>>> mod.init_params(mx.init.Zero())
>>> batch = mx.io.DataBatch([mx.nd.zeros((2, 3))], [mx.nd.zeros((2,))], bucket_key=3,
...                         provide_data=[("data", (2, 3))],
...                         provide_label=[("softmax_label", (2,))])
>>> mod.forward(batch, is_train=False)
>>> sorted(mod._buckets), mod.get_outputs()[0].shape
([3, 4], (2, 2))
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

from ..io import DataBatch
from ..ndarray import NDArray
from .base_module import DEFAULT_INITIALIZER, BaseModule
from .module import Module

__all__ = ["BucketingModule"]


class BucketingModule(BaseModule):
    """Modules for several buckets of one network, with shared parameters.

    Parameters
    ----------
    sym_gen : callable
        ``sym_gen(bucket_key) -> (symbol, data_names, label_names)``.
    default_bucket_key : hashable
        The bucket bound first (usually the largest); its module holds the
        parameter arrays the others share.
    logger, context, work_load_list, fixed_param_names, state_names, group2ctxs,
    compression_params :
        As for :class:`Module`, passed to every bucket's module.
    """

    def __init__(
        self,
        sym_gen: Callable[[Any], tuple],
        default_bucket_key: Any = None,
        logger: Any = logging,
        context: Any = None,
        work_load_list: Any = None,
        fixed_param_names: Any = None,
        state_names: Any = None,
        group2ctxs: Any = None,
        compression_params: Any = None,
    ):
        super().__init__(logger=logger)
        assert default_bucket_key is not None
        self._default_bucket_key = default_bucket_key
        self._sym_gen = sym_gen
        symbol, data_names, label_names = self._call_sym_gen(default_bucket_key)
        self._check_names(symbol, data_names, label_names)
        self._module_args = {
            "logger": logger,
            "context": context,
            "work_load_list": work_load_list,
            "fixed_param_names": fixed_param_names,
            "state_names": state_names,
            "group2ctxs": group2ctxs,
            "compression_params": compression_params,
        }
        self._buckets: dict[Any, Module] = {}
        self._curr_module: Module | None = None
        self._curr_bucket_key: Any = None
        self._params_dirty = False
        self._monitor: Any = None
        self._grad_req: Any = None
        self._loaded: tuple[dict, dict] | None = None  # parameters read by load()

    def _call_sym_gen(self, bucket_key: Any) -> tuple:
        return self._sym_gen(bucket_key)

    @staticmethod
    def _check_names(symbol: Any, data_names: Any, label_names: Any) -> None:
        """The names ``sym_gen`` gives must be inputs of its symbol."""
        arguments = symbol.list_arguments()
        for name in list(data_names or []):
            if name not in arguments:
                raise ValueError(
                    f"sym_gen: data name {name!r} is not an argument of the symbol ({arguments})"
                )
        for name in list(label_names or []):
            if name not in arguments:
                warnings.warn(
                    f"sym_gen: label name {name!r} is not an argument of the symbol", stacklevel=3
                )

    def _reset_bind(self) -> None:
        self.binded = False
        self._buckets = {}
        self._curr_module = None
        self._curr_bucket_key = None

    # -- names and shapes (the current bucket's) --------------------------------------
    @property
    def data_names(self) -> list[str]:
        """The current bucket's data names (the default bucket's before binding)."""
        if self.binded:
            return self._curr_module.data_names  # type: ignore[union-attr]
        return list(self._call_sym_gen(self._default_bucket_key)[1])

    @property
    def output_names(self) -> list[str]:
        """The current bucket's output names."""
        if self.binded:
            return self._curr_module.output_names  # type: ignore[union-attr]
        return self._call_sym_gen(self._default_bucket_key)[0].list_outputs()

    @property
    def data_shapes(self) -> Any:
        """The current bucket's data descriptions."""
        assert self.binded
        return self._curr_module.data_shapes  # type: ignore[union-attr]

    @property
    def label_shapes(self) -> Any:
        """The current bucket's label descriptions."""
        assert self.binded
        return self._curr_module.label_shapes  # type: ignore[union-attr]

    @property
    def output_shapes(self) -> Any:
        """The current bucket's output shapes."""
        assert self.binded
        return self._curr_module.output_shapes  # type: ignore[union-attr]

    @property
    def symbol(self) -> Any:
        """The current bucket's network."""
        assert self.binded
        return self._curr_module.symbol  # type: ignore[union-attr]

    # -- parameters -------------------------------------------------------------------
    def get_params(self) -> tuple[dict[str, NDArray], dict[str, NDArray]]:
        """The shared parameters, with the values training wrote."""
        assert self.binded and self.params_initialized
        module = self._curr_module
        assert module is not None
        module._params_dirty = self._params_dirty
        params = module.get_params()
        self._params_dirty = False
        return params

    def init_params(
        self,
        initializer: Any = DEFAULT_INITIALIZER,
        arg_params: dict | None = None,
        aux_params: dict | None = None,
        allow_missing: bool = False,
        force_init: bool = False,
        allow_extra: bool = False,
    ) -> None:
        """Initialise the shared parameters (see :meth:`Module.init_params`)."""
        if self.params_initialized and not force_init:
            return
        assert self.binded, "call bind before initializing the parameters"
        self._curr_module.init_params(  # type: ignore[union-attr]
            initializer=initializer,
            arg_params=arg_params,
            aux_params=aux_params,
            allow_missing=allow_missing,
            force_init=force_init,
            allow_extra=allow_extra,
        )
        self._params_dirty = False
        self.params_initialized = True

    def set_params(
        self,
        arg_params: dict,
        aux_params: dict,
        allow_missing: bool = False,
        force_init: bool = True,
        allow_extra: bool = False,
    ) -> None:
        """Assign the shared parameters by name."""
        if self._set_params_settled(arg_params, aux_params, allow_missing, force_init, allow_extra):
            return
        self._curr_module.set_params(  # type: ignore[union-attr]
            arg_params,
            aux_params,
            allow_missing=allow_missing,
            force_init=force_init,
            allow_extra=allow_extra,
        )
        self._params_dirty = True
        self.params_initialized = True

    # -- binding ----------------------------------------------------------------------
    def bind(
        self,
        data_shapes: Any,
        label_shapes: Any = None,
        for_training: bool = True,
        inputs_need_grad: bool = False,
        force_rebind: bool = False,
        shared_module: Any = None,
        grad_req: Any = "write",
    ) -> None:
        """Bind the default bucket's module to these shapes."""
        if self._loaded is not None:  # from load(): the file's parameters
            arg_params, aux_params = self._loaded
            self._loaded = None
        elif self.params_initialized and self.binded:
            arg_params, aux_params = self.get_params()
        if force_rebind:
            self._reset_bind()
        if self.binded:
            self.logger.warning("Already bound, ignoring bind()")
            return
        assert shared_module is None, "shared_module for BucketingModule is not supported"
        self.for_training = for_training
        self.inputs_need_grad = inputs_need_grad
        self.binded = True
        self._grad_req = grad_req
        symbol, data_names, label_names = self._call_sym_gen(self._default_bucket_key)
        module = Module(symbol, data_names, label_names, **self._module_args)
        module.bind(
            data_shapes,
            label_shapes,
            for_training,
            inputs_need_grad,
            force_rebind=False,
            shared_module=None,
            grad_req=grad_req,
        )
        self._curr_module = module
        self._curr_bucket_key = self._default_bucket_key
        self._buckets[self._default_bucket_key] = module
        if self.params_initialized:  # re-binding, or loaded: the parameters go in
            self.set_params(arg_params, aux_params, allow_extra=True)

    def switch_bucket(self, bucket_key: Any, data_shapes: Any, label_shapes: Any = None) -> None:
        """Make ``bucket_key``'s module current, binding it (sharing the default
        bucket's parameters and optimizer) the first time."""
        assert self.binded, "call bind before switching bucket"
        if bucket_key not in self._buckets:
            symbol, data_names, label_names = self._call_sym_gen(bucket_key)
            module = Module(symbol, data_names, label_names, **self._module_args)
            module.bind(
                data_shapes,
                label_shapes,
                self._curr_module.for_training,  # type: ignore
                self._curr_module.inputs_need_grad,  # type: ignore[union-attr]
                force_rebind=False,
                shared_module=self._buckets[self._default_bucket_key],
                grad_req=self._grad_req,
            )
            self._buckets[bucket_key] = module
        self._curr_module = self._buckets[bucket_key]
        self._curr_bucket_key = bucket_key

    # -- optimizer --------------------------------------------------------------------
    def init_optimizer(
        self,
        kvstore: Any = "local",
        optimizer: Any = "sgd",
        optimizer_params: Any = (("learning_rate", 0.01),),
        force_init: bool = False,
    ) -> None:
        """One optimizer and updater for every bucket."""
        assert self.binded and self.params_initialized
        if self.optimizer_initialized and not force_init:
            self.logger.warning("optimizer already initialized, ignoring.")
            return
        module = self._curr_module
        assert module is not None
        module.init_optimizer(kvstore, optimizer, optimizer_params, force_init=force_init)
        for other in self._buckets.values():
            if other is not module:
                other.borrow_optimizer(module)
        self.optimizer_initialized = True

    # -- computing --------------------------------------------------------------------
    def prepare(self, data_batch: DataBatch, sparse_row_id_fn: Any = None) -> None:
        """Bind the batch's bucket ahead of its forward (the current bucket stays)."""
        assert self.binded and self.params_initialized
        original = self._curr_bucket_key
        self.switch_bucket(data_batch.bucket_key, data_batch.provide_data, data_batch.provide_label)
        self._curr_module.prepare(data_batch, sparse_row_id_fn)  # type: ignore[union-attr]
        self.switch_bucket(original, None, None)

    def forward(self, data_batch: DataBatch, is_train: bool | None = None) -> None:
        """Switch to the batch's bucket and run its forward."""
        assert self.binded and self.params_initialized
        self.switch_bucket(data_batch.bucket_key, data_batch.provide_data, data_batch.provide_label)
        self._curr_module.forward(data_batch, is_train=is_train)  # type: ignore[union-attr]

    def backward(self, out_grads: Any = None) -> None:
        """The current bucket's backward."""
        assert self.binded and self.params_initialized
        self._curr_module.backward(out_grads=out_grads)  # type: ignore[union-attr]

    def update(self) -> None:
        """An optimizer step with the current bucket's gradients."""
        assert self.binded and self.params_initialized and self.optimizer_initialized
        self._params_dirty = True
        self._curr_module.update()  # type: ignore[union-attr]

    def get_outputs(self, merge_multi_context: bool = True) -> list[NDArray]:
        """The current bucket's outputs."""
        assert self.binded and self.params_initialized
        return self._curr_module.get_outputs(merge_multi_context)  # type: ignore

    def get_input_grads(self, merge_multi_context: bool = True) -> list[NDArray]:
        """The current bucket's input gradients."""
        assert self.binded and self.params_initialized and self.inputs_need_grad
        return self._curr_module.get_input_grads(merge_multi_context)  # type: ignore

    def update_metric(self, eval_metric: Any, labels: Any, pre_sliced: bool = False) -> None:
        """Add the current bucket's outputs to ``eval_metric``."""
        assert self.binded and self.params_initialized
        self._curr_module.update_metric(eval_metric, labels, pre_sliced)  # type: ignore

    def get_states(self, merge_multi_context: bool = True) -> list[NDArray]:
        """The current bucket's state inputs."""
        return self._curr_module.get_states(merge_multi_context)  # type: ignore

    def set_states(self, states: Any = None, value: float | None = None) -> None:
        """Set the current bucket's state inputs."""
        self._curr_module.set_states(states, value)  # type: ignore[union-attr]

    def install_monitor(self, mon: Any) -> None:
        """Not supported: symgrad's compiled programs keep no per-op outputs."""
        raise NotImplementedError("BucketingModule.install_monitor is not supported by symgrad")

    # -- checkpoints ------------------------------------------------------------------
    def save_checkpoint(self, prefix: str, epoch: int, remove_amp_cast: bool = False) -> None:
        """Write ``prefix-<key>-symbol.json`` for every bound bucket,
        ``prefix-%04d.params`` and ``prefix.buckets`` (the bucket keys, the
        default first, as an int32 array in an ``nd.save`` list), as MXNet does."""
        from ..ndarray import array
        from ..ndarray.serialization import save

        assert self._buckets, "no bucket to save: bind the module first"
        for key, module in self._buckets.items():
            module.symbol.save(f"{prefix}-{key}-symbol.json")
        param_name = f"{prefix}-{epoch:04d}.params"
        self.save_params(param_name)
        logging.info('Saved checkpoint to "%s"', param_name)
        keys = [self._default_bucket_key] + [
            k for k in self._buckets if k != self._default_bucket_key
        ]
        save(f"{prefix}.buckets", [array(keys, dtype="int32")])

    @staticmethod
    def load(
        prefix: str,
        epoch: int,
        sym_gen: Callable[[Any], tuple] | None = None,
        default_bucket_key: Any = None,
        **kwargs: Any,
    ) -> BucketingModule:
        """A BucketingModule holding the parameters of ``prefix-%04d.params``, set
        at ``bind``; ``sym_gen`` and ``default_bucket_key`` are required, as in
        MXNet (``kwargs`` go to the constructor)."""
        from ..model import load_params

        assert sym_gen is not None, "sym_gen is required for loading BucketingModule"
        assert default_bucket_key is not None, (
            "default_bucket_key is required for loading BucketingModule"
        )
        module = BucketingModule(sym_gen, default_bucket_key, **kwargs)
        module._loaded = load_params(prefix, epoch)
        module.params_initialized = True
        return module
