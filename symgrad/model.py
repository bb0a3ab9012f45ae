"""``mx.model``: MXNet 1.x checkpoint files, and the deprecated ``FeedForward``.

A checkpoint is two files: ``prefix-symbol.json`` (the network, in MXNet's JSON)
and ``prefix-%04d.params`` (an ``nd.save`` dict whose keys are ``arg:<name>``
for arguments and ``aux:<name>`` for auxiliary states). Files written here load
in MXNet 1.9.1 and the other way round.

>>> import os, tempfile, symgrad as mx
>>> net = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=2, name="fc")
>>> prefix = os.path.join(tempfile.mkdtemp(), "net")
>>> mx.model.save_checkpoint(prefix, 3, net, {"fc_weight": mx.nd.ones((2, 4)),
...                                          "fc_bias": mx.nd.zeros((2,))}, {})
>>> symbol, args, aux = mx.model.load_checkpoint(prefix, 3)
>>> symbol.list_arguments(), sorted(args), aux
(['data', 'fc_weight', 'fc_bias'], ['fc_bias', 'fc_weight'], {})
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from . import symbol as sym
from .callback import BatchEndParam
from .ndarray import NDArray
from .ndarray.serialization import load as nd_load
from .ndarray.serialization import save as nd_save

__all__ = ["BatchEndParam", "FeedForward", "load_checkpoint", "load_params", "save_checkpoint"]


def save_checkpoint(
    prefix: str,
    epoch: int,
    symbol: Any,
    arg_params: dict[str, NDArray],
    aux_params: dict[str, NDArray],
    remove_amp_cast: bool = True,
) -> None:
    """Write a checkpoint: ``prefix-symbol.json`` (skipped when ``symbol`` is None)
    and ``prefix-%04d.params`` holding ``arg_params`` under ``arg:`` keys and
    ``aux_params`` under ``aux:`` keys.

    Parameters
    ----------
    prefix : str
        Path prefix of the two files.
    epoch : int
        The epoch number written into the parameter file's name.
    symbol : Symbol or None
        The network.
    arg_params, aux_params : dict of str to NDArray
        Arguments and auxiliary states by name.
    remove_amp_cast : bool
        MXNet drops ``amp_cast`` nodes from the saved JSON; symgrad's graphs never
        hold them, so the flag changes nothing here.
    """
    if symbol is not None:
        symbol.save(f"{prefix}-symbol.json")
    params = {f"arg:{name}": value for name, value in arg_params.items()}
    params.update({f"aux:{name}": value for name, value in (aux_params or {}).items()})
    param_name = f"{prefix}-{epoch:04d}.params"
    nd_save(param_name, params)
    logging.info('Saved checkpoint to "%s"', param_name)


def load_params(prefix: str, epoch: int) -> tuple[dict[str, NDArray], dict[str, NDArray]]:
    """The ``(arg_params, aux_params)`` dicts of ``prefix-%04d.params``; keys with
    another tag than ``arg``/``aux`` are ignored, as MXNet does."""
    fname = f"{prefix}-{epoch:04d}.params"
    saved = nd_load(fname)
    arg_params: dict[str, NDArray] = {}
    aux_params: dict[str, NDArray] = {}
    if not saved:
        logging.warning("Params file '%s' is empty", fname)
        return arg_params, aux_params
    return split_params(saved, fname)


def split_params(
    saved: Any, fname: str, strict: bool = False
) -> tuple[dict[str, NDArray], dict[str, NDArray]]:
    """The ``arg:``/``aux:`` arrays of a loaded params file as two dicts by name;
    ``strict`` refuses any other key (Module.load_params does, load_checkpoint
    ignores them), as MXNet does."""
    if not isinstance(saved, dict):
        raise ValueError(f"Invalid param file {fname}: it holds a list, not named arrays")
    arg_params: dict[str, NDArray] = {}
    aux_params: dict[str, NDArray] = {}
    for key, value in saved.items():
        kind, _, name = key.partition(":")
        if kind == "arg":
            arg_params[name] = value
        elif kind == "aux":
            aux_params[name] = value
        elif strict:
            raise ValueError("Invalid param file " + fname)
    return arg_params, aux_params


def load_checkpoint(prefix: str, epoch: int) -> tuple[Any, dict[str, NDArray], dict[str, NDArray]]:
    """Read a checkpoint written by :func:`save_checkpoint` (here or by MXNet).

    Returns
    -------
    symbol : Symbol
        The network of ``prefix-symbol.json``.
    arg_params, aux_params : dict of str to NDArray
        The arguments and auxiliary states of ``prefix-%04d.params``.
    """
    symbol = sym.load(f"{prefix}-symbol.json")
    arg_params, aux_params = load_params(prefix, epoch)
    return symbol, arg_params, aux_params


# ---------------------------------------------------------------------------
# FeedForward: MXNet's deprecated model class, on a Module's executor
# ---------------------------------------------------------------------------


def _call_all(callbacks: Any, *args: Any) -> None:
    """Call one callback or each of a list with ``args``."""
    if callbacks is None:
        return
    for callback in callbacks if isinstance(callbacks, (list, tuple)) else [callbacks]:
        callback(*args)


class FeedForward:
    """MXNet 1.x's deprecated single-data, single-output model class.

    ``fit`` trains on a DataIter or numpy arrays (shuffled, ``numpy_batch_size``
    rows a batch, the last batch rolling over), ``predict`` and ``score`` run
    inference, ``save``/``load`` use checkpoint files. Extra keyword arguments
    are the optimizer's (``learning_rate``, ``momentum``, ``wd``...); the
    optimizer gets ``rescale_grad = 1 / batch_size``. It logs what MXNet's loop
    logs: ``Start training with [cpu(0)]``, ``Epoch[i] Resetting Data
    Iterator``, ``Epoch[i] Time cost=...`` and, through the default
    ``eval_end_callback``, ``Epoch[i] Validation-<metric>=<value>``; batch-end
    callbacks see batch numbers counted from 1.

    Parameters
    ----------
    symbol : Symbol
        The network (one data input, one label input).
    ctx : Context or list of Context, optional
        Accepted for MXNet's signature; symgrad runs on the CPU.
    num_epoch : int, optional
        Epochs to train (``fit`` ends before epoch ``num_epoch``).
    epoch_size : int, optional
        Batches per epoch (the whole iterator by default).
    optimizer : str or Optimizer
        The optimizer, by name or instance.
    initializer : Initializer
        For parameters without a value (``Uniform(0.01)`` by default).
    numpy_batch_size : int
        Batch size for numpy inputs.
    arg_params, aux_params : dict of str to NDArray, optional
        Starting values.
    allow_extra_params : bool
        Accept values for names the network does not have.
    begin_epoch : int
        The first epoch's number.
    """

    def __init__(
        self,
        symbol: Any,
        ctx: Any = None,
        num_epoch: int | None = None,
        epoch_size: int | None = None,
        optimizer: Any = "sgd",
        initializer: Any = None,
        numpy_batch_size: int = 128,
        arg_params: dict | None = None,
        aux_params: dict | None = None,
        allow_extra_params: bool = False,
        begin_epoch: int = 0,
        **kwargs: Any,
    ):
        warnings.warn(
            "mxnet.model.FeedForward has been deprecated. Please use mxnet.mod.Module instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        from .context import cpu
        from .initializer import Uniform

        self.symbol = symbol
        self.ctx = (
            [cpu()] if ctx is None else (list(ctx) if isinstance(ctx, (list, tuple)) else [ctx])
        )
        self.num_epoch = num_epoch
        self.epoch_size = epoch_size
        self.optimizer = optimizer
        self.initializer = Uniform(0.01) if initializer is None else initializer
        self.numpy_batch_size = numpy_batch_size
        self.arg_params = arg_params
        self.aux_params = aux_params
        self.allow_extra_params = allow_extra_params
        self.begin_epoch = begin_epoch
        self.kwargs = kwargs.copy()

    # -- data ------------------------------------------------------------------------
    def _init_iter(self, X: Any, y: Any, is_train: bool) -> Any:
        """A DataIter over ``X`` (returned as is when it is one) and labels ``y``."""
        import numpy as np

        from .io import DataIter, NDArrayIter

        if isinstance(X, (np.ndarray, NDArray)):
            if y is None:
                if is_train:
                    raise ValueError("y must be specified when X is numpy.ndarray")
                y = np.zeros(X.shape[0])
            if not isinstance(y, (np.ndarray, NDArray)):
                raise TypeError("y must be ndarray when X is numpy.ndarray")
            if X.shape[0] != y.shape[0]:
                raise ValueError("The numbers of data points and labels not equal")
            if y.ndim == 2 and y.shape[1] == 1:
                y = y.reshape(-1)
            if y.ndim != 1:
                raise ValueError("Label must be 1D or 2D (with 2nd dimension being 1)")
            batch_size = min(X.shape[0], self.numpy_batch_size)
            if is_train:
                return NDArrayIter(X, y, batch_size, shuffle=True, last_batch_handle="roll_over")
            return NDArrayIter(X, y, batch_size, shuffle=False)
        if not isinstance(X, DataIter):
            raise TypeError("X must be DataIter, NDArray or numpy.ndarray")
        return X

    def _init_eval_iter(self, eval_data: Any) -> Any:
        """``eval_data`` as a DataIter; an ``(X, y)`` pair is batched like
        training data, as MXNet does."""
        if eval_data is None:
            return None
        if isinstance(eval_data, (tuple, list)) and len(eval_data) == 2:
            data, label = eval_data
            if data is None:
                raise ValueError("Eval data is NONE")
            from .io import DataIter

            if label is None and isinstance(data, DataIter):
                return data
            import numpy as np

            data = np.array(data) if isinstance(data, list) else data
            label = np.array(label) if isinstance(label, list) else label
            return self._init_iter(data, label, is_train=True)
        return self._init_iter(eval_data, None, is_train=False)

    def _module(self, data: Any, for_training: bool) -> Any:
        """A Module bound to ``data``'s shapes, holding this model's parameters."""
        from .module import Module

        data_names = [desc[0] for desc in data.provide_data]
        if for_training:
            label_names = [desc[0] for desc in data.provide_label]
        else:  # inputs without values (the labels) stay zeros, as in MXNet's predictor
            known = self.arg_params or {}
            label_names = [
                n for n in self.symbol.list_arguments() if n not in data_names and n not in known
            ]
        label_names = [n for n in label_names if n in self.symbol.list_arguments()]
        mod = Module(self.symbol, data_names=data_names, label_names=label_names, context=self.ctx)
        with warnings.catch_warnings():
            # an inference bind has no label shapes: nothing to warn about here
            warnings.simplefilter("ignore", UserWarning)
            mod.bind(
                data.provide_data,
                data.provide_label if for_training else None,
                for_training=for_training,
            )
        return mod

    def _set_params(self, mod: Any, initialise: bool) -> None:
        """Put this model's parameters into ``mod`` (the others from the
        initializer when ``initialise``), then keep ``mod``'s dicts."""
        given_args, given_aux = self.arg_params or {}, self.aux_params or {}
        if not self.allow_extra_params:
            known = set(self.symbol.list_arguments()) | set(self.symbol.list_auxiliary_states())
            extra = sorted(set(given_args) - known | set(given_aux) - known)
            if extra:
                raise ValueError(f'Find name "{extra[0]}" that is not in the arguments')
        mod.init_params(
            self.initializer if initialise else None,
            arg_params=given_args,
            aux_params=given_aux,
            allow_missing=True,
            force_init=True,
            allow_extra=True,
        )
        self.arg_params, self.aux_params = mod.get_params()

    # -- training --------------------------------------------------------------------
    def fit(
        self,
        X: Any,
        y: Any = None,
        eval_data: Any = None,
        eval_metric: Any = "acc",
        epoch_end_callback: Any = None,
        batch_end_callback: Any = None,
        kvstore: Any = "local",
        logger: Any = None,
        work_load_list: Any = None,
        monitor: Any = None,
        eval_end_callback: Any = "default",
        eval_batch_end_callback: Any = None,
    ) -> None:
        """Train from epoch ``begin_epoch`` to ``num_epoch``; ``eval_data`` (a
        DataIter or an ``(X, y)`` pair) is scored after each epoch."""
        import time

        from . import metric as metric_mod
        from .callback import LogValidationMetricsCallback
        from .optimizer import Optimizer, create, get_updater

        if eval_end_callback == "default":
            eval_end_callback = LogValidationMetricsCallback()
        logger = logger or logging
        data = self._init_iter(X, y, is_train=True)
        eval_iter = self._init_eval_iter(eval_data)
        if not isinstance(eval_metric, metric_mod.EvalMetric):
            eval_metric = metric_mod.create(eval_metric)
        mod = self._module(data, for_training=True)
        self._set_params(mod, initialise=True)
        param_names = mod._param_names
        self.kwargs["param_idx2name"] = dict(enumerate(param_names))
        if isinstance(self.optimizer, str):
            optimizer = create(self.optimizer, rescale_grad=1.0 / data.batch_size, **self.kwargs)
        elif isinstance(self.optimizer, Optimizer):
            optimizer = self.optimizer
            if not optimizer.idx2name:
                optimizer.idx2name = dict(self.kwargs["param_idx2name"])
        else:
            raise TypeError("optimizer must be a name or an Optimizer")
        mod._optimizer, mod._updater = optimizer, get_updater(optimizer)
        mod.optimizer_initialized = True

        logger.info("Start training with %s", str(self.ctx))
        for epoch in range(self.begin_epoch, self.num_epoch or 0):
            tic = time.time()
            eval_metric.reset()
            nbatch = 0
            while True:
                exhausted = True
                for batch in data:
                    mod.forward_backward(batch)
                    mod.update()
                    eval_metric.update(batch.label, mod.get_outputs())
                    nbatch += 1
                    if batch_end_callback is not None:
                        _call_all(
                            batch_end_callback,
                            BatchEndParam(
                                epoch=epoch, nbatch=nbatch, eval_metric=eval_metric, locals=locals()
                            ),
                        )
                    if self.epoch_size is not None and nbatch >= self.epoch_size:
                        exhausted = False
                        break
                if exhausted:
                    logger.info("Epoch[%d] Resetting Data Iterator", epoch)
                    data.reset()
                if self.epoch_size is None or nbatch >= self.epoch_size:
                    break
            logger.info("Epoch[%d] Time cost=%.3f", epoch, time.time() - tic)
            self.arg_params, self.aux_params = mod.get_params()
            _call_all(epoch_end_callback, epoch, self.symbol, self.arg_params, self.aux_params)
            if eval_iter is not None:
                eval_metric.reset()
                eval_iter.reset()
                count = 0
                for i, batch in enumerate(eval_iter):
                    mod.forward(batch, is_train=False)
                    eval_metric.update(batch.label, mod.get_outputs())
                    if eval_batch_end_callback is not None:
                        _call_all(
                            eval_batch_end_callback,
                            BatchEndParam(
                                epoch=epoch, nbatch=i, eval_metric=eval_metric, locals=locals()
                            ),
                        )
                    count += 1
                if eval_end_callback is not None:
                    _call_all(
                        eval_end_callback,
                        BatchEndParam(
                            epoch=epoch, nbatch=count, eval_metric=eval_metric, locals=locals()
                        ),
                    )
                eval_iter.reset()

    # -- inference -------------------------------------------------------------------
    def predict(
        self, X: Any, num_batch: int | None = None, return_data: bool = False, reset: bool = True
    ) -> Any:
        """The outputs over ``X`` as numpy arrays, padding removed (one array for
        one output); with ``return_data`` also the data and labels seen."""
        import numpy as np

        data = self._init_iter(X, None, is_train=False)
        if reset:
            data.reset()
        mod = self._module(data, for_training=False)
        self._set_params(mod, initialise=False)
        outputs: list[list] = []
        inputs: list[list] = []
        labels: list[list] = []
        for i, batch in enumerate(data):
            if num_batch is not None and i == num_batch:
                break
            mod.forward(batch, is_train=False)
            real = batch.data[0].shape[0] - (batch.pad or 0)
            for position, out in enumerate(mod.get_outputs()):
                if position == len(outputs):
                    outputs.append([])
                outputs[position].append(out.asnumpy()[:real])
            if return_data:
                for store, arrays in ((inputs, batch.data), (labels, batch.label or [])):
                    for position, arr in enumerate(arrays):
                        if position == len(store):
                            store.append([])
                        store[position].append(arr.asnumpy()[:real])
        merged = [np.concatenate(parts) for parts in outputs]
        result: Any = merged[0] if len(merged) == 1 else merged
        if not return_data:
            return result
        data_out = [np.concatenate(parts) for parts in inputs]
        label_out = [np.concatenate(parts) for parts in labels]
        return (
            result,
            data_out[0] if len(data_out) == 1 else data_out,
            label_out[0] if len(label_out) == 1 else label_out,
        )

    def score(
        self,
        X: Any,
        eval_metric: Any = "acc",
        num_batch: int | None = None,
        batch_end_callback: Any = None,
        reset: bool = True,
    ) -> float:
        """``eval_metric``'s value over ``X`` (padded samples counted)."""
        from . import metric as metric_mod

        data = self._init_iter(X, None, is_train=False)
        if reset:
            data.reset()
        if not isinstance(eval_metric, metric_mod.EvalMetric):
            eval_metric = metric_mod.create(eval_metric)
        eval_metric.reset()
        mod = self._module(data, for_training=False)
        self._set_params(mod, initialise=False)
        for i, batch in enumerate(data):
            if num_batch is not None and i == num_batch:
                break
            mod.forward(batch, is_train=False)
            eval_metric.update(batch.label, mod.get_outputs())
            if batch_end_callback is not None:
                _call_all(
                    batch_end_callback,
                    BatchEndParam(epoch=0, nbatch=i, eval_metric=eval_metric, locals=locals()),
                )
        return eval_metric.get()[1]

    # -- files -------------------------------------------------------------------------
    def save(self, prefix: str, epoch: int | None = None, remove_amp_cast: bool = True) -> None:
        """A checkpoint of this model at ``epoch`` (``num_epoch`` by default)."""
        if epoch is None:
            epoch = self.num_epoch
        assert epoch is not None
        save_checkpoint(
            prefix,
            epoch,
            self.symbol,
            self.arg_params or {},
            self.aux_params or {},
            remove_amp_cast=remove_amp_cast,
        )

    @staticmethod
    def load(prefix: str, epoch: int, ctx: Any = None, **kwargs: Any) -> FeedForward:
        """A model from the checkpoint ``prefix``/``epoch``, to continue from
        epoch ``epoch`` (``kwargs`` go to the constructor)."""
        symbol, arg_params, aux_params = load_checkpoint(prefix, epoch)
        return FeedForward(
            symbol,
            ctx=ctx,
            arg_params=arg_params,
            aux_params=aux_params,
            begin_epoch=epoch,
            **kwargs,
        )

    @staticmethod
    def create(
        symbol: Any,
        X: Any,
        y: Any = None,
        ctx: Any = None,
        num_epoch: int | None = None,
        epoch_size: int | None = None,
        optimizer: Any = "sgd",
        initializer: Any = None,
        eval_data: Any = None,
        eval_metric: Any = "acc",
        epoch_end_callback: Any = None,
        batch_end_callback: Any = None,
        kvstore: Any = "local",
        logger: Any = None,
        work_load_list: Any = None,
        eval_end_callback: Any = "default",
        eval_batch_end_callback: Any = None,
        **kwargs: Any,
    ) -> FeedForward:
        """Make a FeedForward and ``fit`` it on ``X``/``y``."""
        model = FeedForward(
            symbol,
            ctx=ctx,
            num_epoch=num_epoch,
            epoch_size=epoch_size,
            optimizer=optimizer,
            initializer=initializer,
            **kwargs,
        )
        model.fit(
            X,
            y,
            eval_data=eval_data,
            eval_metric=eval_metric,
            epoch_end_callback=epoch_end_callback,
            batch_end_callback=batch_end_callback,
            kvstore=kvstore,
            logger=logger,
            work_load_list=work_load_list,
            eval_end_callback=eval_end_callback,
            eval_batch_end_callback=eval_batch_end_callback,
        )
        return model
