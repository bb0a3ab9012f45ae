"""``BaseModule``: the training and evaluation loops every MXNet 1.x module shares.

A module is bound to input shapes (``bind``), given parameters
(``init_params``/``set_params``) and an optimizer (``init_optimizer``); then
``forward``/``backward``/``update`` run one step. On top of those primitives this
class implements ``fit``, ``score``, ``predict`` and ``iter_predict`` with
MXNet 1.9.1's order of calls and its log lines, so metric values and callbacks
see exactly what they see in MXNet.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .. import metric as metric_mod
from ..callback import BatchEndParam
from ..initializer import Uniform
from ..io import DataBatch, DataDesc, DataIter
from ..model import split_params
from ..ndarray import NDArray, concatenate
from ..ndarray import array as nd_array
from ..ndarray.serialization import load as nd_load
from ..ndarray.serialization import save as nd_save

__all__ = ["BaseModule"]

# MXNet's default initializer of fit and init_params (stateless, so one instance)
DEFAULT_INITIALIZER = Uniform(0.01)


def _as_list(obj: Any) -> list:
    """``obj`` itself when it is a list or tuple, else ``[obj]``."""
    return list(obj) if isinstance(obj, (list, tuple)) else [obj]


def _check_input_names(symbol: Any, names: Sequence[str], typename: str, throw: bool) -> None:
    """Every name in ``names`` must be an argument of ``symbol``: raise (``throw``)
    or warn, listing the arguments that are not learned parameters, as MXNet does."""
    args = symbol.list_arguments()
    for name in names:
        if name in args:
            continue
        candidates = [
            arg for arg in args if not arg.endswith(("_weight", "_bias", "_gamma", "_beta"))
        ]
        msg = (
            f"You created Module with Module(..., {typename}_names={list(names)}) but "
            f"input with name '{name}' is not found in symbol.list_arguments(). "
            "Did you mean one of:\n\t" + "\n\t".join(candidates)
        )
        if throw:
            raise ValueError(msg)
        warnings.warn(msg, stacklevel=3)


def _check_names_match(
    data_names: Sequence[str], provided: Sequence[DataDesc], name: str, throw: bool
) -> None:
    """The names of ``provided`` must be ``data_names`` (in any order)."""
    actual = [desc[0] for desc in provided]
    if sorted(data_names) != sorted(actual):
        msg = (
            f"Data provided by {name}_shapes don't match names specified by {name}_names "
            f"({provided} vs. {list(data_names)})"
        )
        if throw:
            raise ValueError(msg)
        warnings.warn(msg, stacklevel=3)


def _as_desc(item: Any) -> DataDesc:
    return item if isinstance(item, DataDesc) else DataDesc(*item)


def _parse_data_desc(
    data_names: Sequence[str], label_names: Sequence[str], data_shapes: Any, label_shapes: Any
) -> tuple[list[DataDesc], list[DataDesc] | None]:
    """``DataDesc`` lists from ``(name, shape)`` pairs or descs, names checked."""
    data = [_as_desc(x) for x in data_shapes]
    _check_names_match(data_names, data, "data", True)
    if label_shapes is not None:
        label = [_as_desc(x) for x in label_shapes]
        _check_names_match(label_names, label, "label", False)
        return data, label
    _check_names_match(label_names, [], "label", False)
    return data, None


class BaseModule:
    """The interface of MXNet 1.x modules, and the loops built on it.

    Subclasses implement ``bind``, ``init_params``, ``get_params``,
    ``init_optimizer``, ``forward``, ``backward``, ``update``, ``get_outputs``,
    ``get_input_grads``, ``update_metric`` and the name and shape properties.

    Parameters
    ----------
    logger : logging.Logger or module
        Where ``fit`` logs (the ``logging`` module by default, as MXNet).
    """

    def __init__(self, logger: Any = logging):
        self.logger = logger
        self.binded = False
        self.for_training = False
        self.inputs_need_grad = False
        self.params_initialized = False
        self.optimizer_initialized = False
        self._symbol: Any = None
        self._total_exec_bytes = 0

    # -- high-level loops ------------------------------------------------------------
    def forward_backward(self, data_batch: DataBatch) -> None:
        """A training forward then backward on ``data_batch``."""
        self.forward(data_batch, is_train=True)
        self.backward()

    def score(
        self,
        eval_data: DataIter,
        eval_metric: Any,
        num_batch: int | None = None,
        batch_end_callback: Any = None,
        score_end_callback: Any = None,
        reset: bool = True,
        epoch: int = 0,
        sparse_row_id_fn: Any = None,
    ) -> list[tuple[str, float]]:
        """Run inference over ``eval_data`` (at most ``num_batch`` batches) and
        return ``eval_metric``'s global ``(name, value)`` pairs.

        As in MXNet, padded samples of a last batch are counted by the metric.
        """
        assert self.binded and self.params_initialized
        if reset:
            eval_data.reset()
        if not isinstance(eval_metric, metric_mod.EvalMetric):
            eval_metric = metric_mod.create(eval_metric)
        eval_metric.reset()
        actual_num_batch = 0
        for nbatch, eval_batch in enumerate(eval_data):
            if num_batch is not None and nbatch == num_batch:
                break
            self.prepare(eval_batch, sparse_row_id_fn=sparse_row_id_fn)
            self.forward(eval_batch, is_train=False)
            self.update_metric(eval_metric, eval_batch.label)
            if batch_end_callback is not None:
                params = BatchEndParam(
                    epoch=epoch, nbatch=nbatch, eval_metric=eval_metric, locals=locals()
                )
                for callback in _as_list(batch_end_callback):
                    callback(params)
            actual_num_batch += 1
        if score_end_callback:
            params = BatchEndParam(
                epoch=epoch, nbatch=actual_num_batch, eval_metric=eval_metric, locals=locals()
            )
            for callback in _as_list(score_end_callback):
                callback(params)
        return eval_metric.get_global_name_value()

    def iter_predict(
        self,
        eval_data: DataIter,
        num_batch: int | None = None,
        reset: bool = True,
        sparse_row_id_fn: Any = None,
    ) -> Iterator[tuple[list[NDArray], int, DataBatch]]:
        """Yield ``(outputs, nbatch, batch)`` per batch, the outputs without the
        padded samples (views of the module's output arrays)."""
        assert self.binded and self.params_initialized
        if reset:
            eval_data.reset()
        for nbatch, eval_batch in enumerate(eval_data):
            if num_batch is not None and nbatch == num_batch:
                break
            self.prepare(eval_batch, sparse_row_id_fn=sparse_row_id_fn)
            self.forward(eval_batch, is_train=False)
            pad = eval_batch.pad or 0
            outputs = [out[0 : out.shape[0] - pad] for out in self.get_outputs()]
            yield outputs, nbatch, eval_batch

    def predict(
        self,
        eval_data: Any,
        num_batch: int | None = None,
        merge_batches: bool = True,
        reset: bool = True,
        always_output_list: bool = False,
        sparse_row_id_fn: Any = None,
    ) -> Any:
        """The outputs over ``eval_data`` in inference mode, padding removed.

        ``eval_data`` may be a DataIter, or one NDArray/numpy batch (then the first
        output is returned). With ``merge_batches`` the batches' outputs are
        concatenated: one NDArray for a single-output network (unless
        ``always_output_list``), else a list; without it, a list per batch.
        """
        assert self.binded and self.params_initialized
        if isinstance(eval_data, (NDArray, np.ndarray)):
            if isinstance(eval_data, np.ndarray):
                eval_data = nd_array(eval_data)
            self.forward(DataBatch([eval_data]))
            return self.get_outputs()[0]
        if not isinstance(eval_data, DataIter):
            raise ValueError("eval_data must be of type NDArray or DataIter")
        if reset:
            eval_data.reset()
        output_list = []
        for nbatch, eval_batch in enumerate(eval_data):
            if num_batch is not None and nbatch == num_batch:
                break
            self.prepare(eval_batch, sparse_row_id_fn=sparse_row_id_fn)
            self.forward(eval_batch, is_train=False)
            pad = eval_batch.pad or 0
            output_list.append([out[0 : out.shape[0] - pad].copy() for out in self.get_outputs()])
        if not output_list:
            return output_list
        if not merge_batches:
            return output_list
        num_outputs = len(output_list[0])
        for outs in output_list:
            assert len(outs) == num_outputs, (
                "Cannot merge batches, as num of outputs is not the same in mini-batches. "
                "Maybe bucketing is used?"
            )
        merged = [concatenate([outs[i] for outs in output_list]) for i in range(num_outputs)]
        if num_outputs == 1 and not always_output_list:
            return merged[0]
        return merged

    def fit(
        self,
        train_data: DataIter,
        eval_data: DataIter | None = None,
        eval_metric: Any = "acc",
        epoch_end_callback: Any = None,
        batch_end_callback: Any = None,
        kvstore: Any = "local",
        optimizer: Any = "sgd",
        optimizer_params: Any = (("learning_rate", 0.01),),
        eval_end_callback: Any = None,
        eval_batch_end_callback: Any = None,
        initializer: Any = DEFAULT_INITIALIZER,
        arg_params: dict | None = None,
        aux_params: dict | None = None,
        allow_missing: bool = False,
        force_rebind: bool = False,
        force_init: bool = False,
        begin_epoch: int = 0,
        num_epoch: int | None = None,
        validation_metric: Any = None,
        monitor: Any = None,
        sparse_row_id_fn: Any = None,
    ) -> None:
        """Train for epochs ``begin_epoch`` .. ``num_epoch - 1``.

        Binds to ``train_data``'s shapes, initialises parameters (``initializer``,
        ``Uniform(0.01)`` by default, or ``arg_params``/``aux_params``) and the
        optimizer, then per batch runs ``forward_backward``, ``update`` and
        ``update_metric``. Each epoch logs ``Epoch[i] Train-<metric>=<value>`` and
        ``Epoch[i] Time cost=<seconds>``, calls ``epoch_end_callback(epoch,
        symbol, arg_params, aux_params)``, and scores ``eval_data`` with
        ``validation_metric`` (``eval_metric`` by default), logging
        ``Epoch[i] Validation-<metric>=<value>``.
        """
        assert num_epoch is not None, "please specify number of epochs"
        self.bind(
            data_shapes=train_data.provide_data,
            label_shapes=train_data.provide_label,
            for_training=True,
            force_rebind=force_rebind,
        )
        if monitor is not None:
            self.install_monitor(monitor)
        self.init_params(
            initializer=initializer,
            arg_params=arg_params,
            aux_params=aux_params,
            allow_missing=allow_missing,
            force_init=force_init,
        )
        self.init_optimizer(kvstore=kvstore, optimizer=optimizer, optimizer_params=optimizer_params)
        if validation_metric is None:
            validation_metric = eval_metric
        if not isinstance(eval_metric, metric_mod.EvalMetric):
            eval_metric = metric_mod.create(eval_metric)

        for epoch in range(begin_epoch, num_epoch):
            tic = time.time()
            eval_metric.reset()
            nbatch = 0
            data_iter = iter(train_data)
            end_of_batch = False
            next_data_batch = next(data_iter)
            eval_name_vals: list = []
            while not end_of_batch:
                data_batch = next_data_batch
                self.forward_backward(data_batch)
                self.update()
                self.update_metric(eval_metric, data_batch.label)
                try:
                    next_data_batch = next(data_iter)
                    self.prepare(next_data_batch, sparse_row_id_fn=sparse_row_id_fn)
                except StopIteration:
                    end_of_batch = True
                if end_of_batch:
                    eval_name_vals = eval_metric.get_global_name_value()
                if batch_end_callback is not None:
                    params = BatchEndParam(
                        epoch=epoch, nbatch=nbatch, eval_metric=eval_metric, locals=locals()
                    )
                    for callback in _as_list(batch_end_callback):
                        callback(params)
                nbatch += 1
            for name, value in eval_name_vals:
                self.logger.info("Epoch[%d] Train-%s=%f", epoch, name, value)
            self.logger.info("Epoch[%d] Time cost=%.3f", epoch, time.time() - tic)

            # MXNet syncs the devices' parameters here; the callbacks get the dicts
            arg_params_now, aux_params_now = self.get_params()
            self.set_params(arg_params_now, aux_params_now)
            if epoch_end_callback is not None:
                for callback in _as_list(epoch_end_callback):
                    callback(epoch, self.symbol, arg_params_now, aux_params_now)
            if eval_data:
                res = self.score(
                    eval_data,
                    validation_metric,
                    score_end_callback=eval_end_callback,
                    batch_end_callback=eval_batch_end_callback,
                    epoch=epoch,
                )
                for name, value in res:
                    self.logger.info("Epoch[%d] Validation-%s=%f", epoch, name, value)
            train_data.reset()

    # -- symbol and parameters ---------------------------------------------------------
    @property
    def symbol(self) -> Any:
        """The network this module runs."""
        return self._symbol

    def get_symbol(self) -> Any:
        """The network this module runs."""
        return self._symbol

    def prepare(self, data_batch: DataBatch, sparse_row_id_fn: Any = None) -> None:
        """Get ready for ``data_batch`` (MXNet pulls sparse rows here; dense
        modules have nothing to do)."""
        if sparse_row_id_fn is not None:
            warnings.warn(
                "sparse_row_id_fn is ignored: symgrad has no row-sparse parameters", stacklevel=2
            )

    def install_monitor(self, mon: Any) -> None:
        """Not supported: symgrad's compiled programs keep no per-op outputs."""
        raise NotImplementedError("Module.install_monitor is not supported by symgrad")

    def set_params(
        self,
        arg_params: dict,
        aux_params: dict,
        allow_missing: bool = False,
        force_init: bool = True,
        allow_extra: bool = False,
    ) -> None:
        """Assign parameter values: ``init_params`` with no initializer."""
        self.init_params(
            initializer=None,
            arg_params=arg_params,
            aux_params=aux_params,
            allow_missing=allow_missing,
            force_init=force_init,
            allow_extra=allow_extra,
        )

    def _set_params_settled(
        self,
        arg_params: dict,
        aux_params: dict,
        allow_missing: bool,
        force_init: bool,
        allow_extra: bool,
    ) -> bool:
        """What every module's ``set_params`` does first, as MXNet's: without
        ``allow_missing`` it is ``init_params``; an initialized module asked not to
        force ignores the call with a warning. True when nothing is left to do."""
        if not allow_missing:
            self.init_params(
                initializer=None,
                arg_params=arg_params,
                aux_params=aux_params,
                allow_missing=allow_missing,
                force_init=force_init,
                allow_extra=allow_extra,
            )
            return True
        if self.params_initialized and not force_init:
            warnings.warn(
                "Parameters already initialized and force_init=False. set_params call ignored.",
                stacklevel=3,
            )
            return True
        return False

    def save_params(self, fname: str) -> None:
        """Write the parameters to ``fname`` with ``arg:``/``aux:`` keys."""
        arg_params, aux_params = self.get_params()
        saved = {f"arg:{k}": v for k, v in arg_params.items()}
        saved.update({f"aux:{k}": v for k, v in aux_params.items()})
        nd_save(fname, saved)

    def load_params(self, fname: str) -> None:
        """Read parameters written by :meth:`save_params` and set them."""
        arg_params, aux_params = split_params(nd_load(fname), fname, strict=True)
        self.set_params(arg_params, aux_params)

    # -- what subclasses implement --------------------------------------------------
    def bind(self, *args: Any, **kwargs: Any) -> None:
        """Allocate executors for the given input shapes."""
        raise NotImplementedError()

    def init_params(self, *args: Any, **kwargs: Any) -> None:
        """Initialise or assign the parameters."""
        raise NotImplementedError()

    def get_params(self) -> tuple[dict, dict]:
        """``(arg_params, aux_params)``."""
        raise NotImplementedError()

    def init_optimizer(self, *args: Any, **kwargs: Any) -> None:
        """Set up the optimizer."""
        raise NotImplementedError()

    def forward(self, data_batch: DataBatch, is_train: bool | None = None) -> None:
        """Compute the outputs for ``data_batch``."""
        raise NotImplementedError()

    def backward(self, out_grads: Any = None) -> None:
        """Compute the gradients of the last forward."""
        raise NotImplementedError()

    def update(self) -> None:
        """Apply the optimizer to the parameters."""
        raise NotImplementedError()

    def get_outputs(self, merge_multi_context: bool = True) -> list[NDArray]:
        """The outputs of the last forward."""
        raise NotImplementedError()

    def update_metric(self, eval_metric: Any, labels: Any, pre_sliced: bool = False) -> None:
        """Add the last forward's outputs to ``eval_metric``."""
        raise NotImplementedError()
