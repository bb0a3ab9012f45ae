"""``Module``: a Symbol with its parameters, executor and optimizer (MXNet 1.x's
``mx.mod.Module``), on symgrad's compiled replay.

One context only: MXNet's executor group over several devices becomes a single
:class:`symgrad.executor.Executor`, whose forward and backward are replayed
programs. The module keeps its own ``arg_params``/``aux_params`` dicts (what
``get_params`` returns) apart from the executor's arrays, synced after updates,
as MXNet does.

>>> import numpy as np, symgrad as mx
>>> net = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=2,
...                                                  name="fc"), name="softmax")
>>> mod = mx.mod.Module(net)
>>> mod.bind(data_shapes=[("data", (4, 3))], label_shapes=[("softmax_label", (4,))])
>>> mod.init_params(mx.init.Zero())
>>> mod.forward(mx.io.DataBatch([mx.nd.ones((4, 3))], [mx.nd.zeros((4,))]))
>>> mod.get_outputs()[0].asnumpy()[0].tolist()
[0.5, 0.5]
"""

from __future__ import annotations

import logging
import warnings
from collections import OrderedDict
from typing import Any

import numpy as np

from symgrad_compiler import topo_order

from .. import optimizer as opt
from ..context import cpu
from ..executor import Executor, simple_bind
from ..initializer import InitDesc
from ..io import DataBatch, DataDesc
from ..model import load_checkpoint
from ..model import save_checkpoint as _save_checkpoint
from ..ndarray import NDArray, zeros
from .base_module import (
    DEFAULT_INITIALIZER,
    BaseModule,
    _check_input_names,
    _parse_data_desc,
)

__all__ = ["Module"]


def _numpy(value: Any) -> np.ndarray:
    return value._data if isinstance(value, NDArray) else np.asarray(value)


def _frozen_statistics(symbol: Any, grad_req: dict[str, str]) -> list[str]:
    """The auxiliary states (BatchNorm's moving statistics) of the stateful nodes
    that no gradient passes through with these grad_reqs.

    MXNet updates BatchNorm's moving statistics in the op's backward, which its
    executor skips when neither the data nor gamma/beta needs a gradient: with
    a frozen body (``fixed_param_names``) the statistics keep their values.
    """
    carries: set[int] = set()  # ids of nodes a gradient flows back into
    frozen: list[str] = []
    for node in topo_order(symbol.entries):
        if node.is_variable:
            if grad_req.get(node.name, "null") != "null":
                carries.add(id(node))
            continue
        names = node.op.input_names(node.attrs) if not node.op.variadic else ()
        state = [e for e, n in zip(node.inputs, names) if n in node.op.aux]
        flowing = any(id(e.node) in carries for e in node.inputs if e not in state)
        if flowing:
            carries.add(id(node))
        elif state:
            frozen += [e.node.name for e in state if e.node.is_variable]
    return frozen


class Module(BaseModule):
    """A module over one Symbol.

    Parameters
    ----------
    symbol : Symbol
        The network.
    data_names, label_names : list of str
        Its data and label inputs (``('data',)`` and ``('softmax_label',)`` by
        default); every other argument is a parameter.
    logger : logging.Logger or module
        Where ``fit`` logs.
    context : Context or list of Context
        Accepted for MXNet's signature; symgrad runs on the CPU.
    work_load_list, group2ctxs, compression_params : optional
        Accepted for MXNet's signature; unused with one device.
    fixed_param_names : list of str, optional
        Parameters that are not updated (their gradients are not computed).
    state_names : list of str, optional
        Inputs that are states set with :meth:`set_states` (no gradient).
    """

    def __init__(
        self,
        symbol: Any,
        data_names: Any = ("data",),
        label_names: Any = ("softmax_label",),
        logger: Any = logging,
        context: Any = None,
        work_load_list: Any = None,
        fixed_param_names: Any = None,
        state_names: Any = None,
        group2ctxs: Any = None,
        compression_params: Any = None,
    ):
        super().__init__(logger=logger)
        self._context = (
            [cpu()]
            if context is None
            else (list(context) if isinstance(context, (list, tuple)) else [context])
        )
        if len(self._context) > 1:
            warnings.warn(
                "symgrad runs a Module on one device; the other contexts are ignored", stacklevel=2
            )
        self._symbol = symbol
        data_names = list(data_names) if data_names is not None else []
        label_names = list(label_names) if label_names is not None else []
        state_names = list(state_names) if state_names is not None else []
        fixed_param_names = list(fixed_param_names) if fixed_param_names is not None else []
        _check_input_names(symbol, data_names, "data", True)
        _check_input_names(symbol, label_names, "label", False)
        _check_input_names(symbol, state_names, "state", True)
        _check_input_names(symbol, fixed_param_names, "fixed_param", True)
        input_names = data_names + label_names + state_names
        self._param_names = [x for x in symbol.list_arguments() if x not in input_names]
        self._fixed_param_names = fixed_param_names
        self._aux_names = symbol.list_auxiliary_states()
        self._data_names = data_names
        self._label_names = label_names
        self._state_names = state_names
        self._output_names = symbol.list_outputs()
        self._arg_params: dict[str, NDArray] | None = None
        self._aux_params: dict[str, NDArray] | None = None
        self._params_dirty = False
        self._optimizer: Any = None
        self._kvstore: Any = None
        self._update_on_kvstore = False
        self._updater: Any = None
        self._preload_opt_states: str | None = None
        self._grad_req: Any = None
        self._exec: Executor | None = None
        self._frozen_aux: list[str] = []  # aux states no training step changes
        self._data_shapes: list[DataDesc] | None = None
        self._label_shapes: list[DataDesc] | None = None

    # -- checkpoints ---------------------------------------------------------------
    @staticmethod
    def load(prefix: str, epoch: int, load_optimizer_states: bool = False, **kwargs: Any) -> Module:
        """A Module on the checkpoint ``prefix``/``epoch`` (``kwargs`` go to the
        constructor). Its parameters are set at ``bind``; the optimizer states of
        ``prefix-%04d.states`` are loaded at ``init_optimizer`` if asked."""
        symbol, args, auxs = load_checkpoint(prefix, epoch)
        mod = Module(symbol=symbol, **kwargs)
        mod._arg_params = args
        mod._aux_params = auxs
        mod.params_initialized = True
        if load_optimizer_states:
            mod._preload_opt_states = f"{prefix}-{epoch:04d}.states"
        return mod

    def save_checkpoint(
        self,
        prefix: str,
        epoch: int,
        save_optimizer_states: bool = False,
        remove_amp_cast: bool = True,
    ) -> None:
        """Write ``prefix-symbol.json``, ``prefix-%04d.params`` and, if asked, the
        optimizer states to ``prefix-%04d.states``."""
        arg_params, aux_params = self.get_params()
        _save_checkpoint(
            prefix, epoch, self._symbol, arg_params, aux_params, remove_amp_cast=remove_amp_cast
        )
        if save_optimizer_states:
            state_name = f"{prefix}-{epoch:04d}.states"
            self.save_optimizer_states(state_name)
            logging.info('Saved optimizer state to "%s"', state_name)

    # -- names and shapes ----------------------------------------------------------
    @property
    def data_names(self) -> list[str]:
        """The data inputs' names."""
        return self._data_names

    @property
    def label_names(self) -> list[str]:
        """The label inputs' names."""
        return self._label_names

    @property
    def output_names(self) -> list[str]:
        """The outputs' names."""
        return self._output_names

    @property
    def data_shapes(self) -> list[DataDesc]:
        """The bound data inputs, as ``DataDesc``s."""
        assert self.binded
        return self._data_shapes  # type: ignore[return-value]

    @property
    def label_shapes(self) -> list[DataDesc] | None:
        """The bound label inputs (None when bound without labels)."""
        assert self.binded
        return self._label_shapes

    @property
    def output_shapes(self) -> list[tuple[str, tuple]]:
        """``(name, shape)`` of each output."""
        assert self.binded
        return [(name, out.shape) for name, out in zip(self._output_names, self._exec.outputs)]  # type: ignore

    # -- parameters ----------------------------------------------------------------
    def get_params(self) -> tuple[dict[str, NDArray], dict[str, NDArray]]:
        """``(arg_params, aux_params)``, with the values the executor trained."""
        assert self.binded and self.params_initialized
        if self._params_dirty:
            self._sync_params_from_devices()
        return self._arg_params, self._aux_params  # type: ignore[return-value]

    def init_params(
        self,
        initializer: Any = DEFAULT_INITIALIZER,
        arg_params: dict | None = None,
        aux_params: dict | None = None,
        allow_missing: bool = False,
        force_init: bool = False,
        allow_extra: bool = False,
    ) -> None:
        """Fill the parameters: from ``arg_params``/``aux_params`` by name, else
        (only where ``allow_missing``, or when those dicts are None) with
        ``initializer`` (``Uniform(0.01)`` by default; None leaves them), in sorted
        name order.

        Raises
        ------
        RuntimeError
            When a parameter is missing from a given dict and not ``allow_missing``.
        """
        if self.params_initialized and not force_init:
            warnings.warn(
                "Parameters already initialized and force_init=False. init_params call ignored.",
                stacklevel=2,
            )
            return
        assert self.binded, "call bind before initializing the parameters"
        attrs = self._symbol.attr_dict()

        def fill(name: str, arr: NDArray, cache: dict | None) -> None:
            desc = InitDesc(name, attrs.get(name, None))
            if cache is not None:
                if name in cache:
                    cached = cache[name]
                    if cached is not arr:
                        if tuple(cached.shape) != tuple(arr.shape):
                            raise ValueError(
                                f"init_params: {name!r} has shape "
                                f"{tuple(cached.shape)}, the network needs "
                                f"{tuple(arr.shape)}"
                            )
                        np.copyto(arr._data, _numpy(cached), casting="unsafe")
                    return
                if not allow_missing:
                    raise RuntimeError(f"{name} is not presented")
            if initializer is not None:
                initializer(desc, arr)

        for name, arr in sorted(self._arg_params.items()):  # type: ignore[union-attr]
            fill(name, arr, arg_params)
        for name, arr in sorted(self._aux_params.items()):  # type: ignore[union-attr]
            fill(name, arr, aux_params)
        self.params_initialized = True
        self._params_dirty = False
        self._exec_set_params(self._arg_params, self._aux_params, allow_extra=allow_extra)

    def set_params(
        self,
        arg_params: dict,
        aux_params: dict,
        allow_missing: bool = False,
        force_init: bool = True,
        allow_extra: bool = False,
    ) -> None:
        """Assign parameter values by name. With ``allow_missing`` the given values
        go straight to the executor and the others keep theirs."""
        if self._set_params_settled(arg_params, aux_params, allow_missing, force_init, allow_extra):
            return
        self._exec_set_params(arg_params, aux_params, allow_extra=allow_extra)
        self._params_dirty = True
        self.params_initialized = True

    def _exec_set_params(
        self, arg_params: dict | None, aux_params: dict | None, allow_extra: bool = False
    ) -> None:
        """Copy values into the executor's arrays (names not in the network are an
        error unless ``allow_extra``)."""
        assert self._exec is not None
        for params, target in (
            (arg_params or {}, self._exec.arg_dict),
            (aux_params or {}, self._exec.aux_dict),
        ):
            for name, value in params.items():
                if name in target:
                    np.copyto(target[name]._data, _numpy(value), casting="unsafe")
                elif not allow_extra:
                    raise ValueError(f'Find name "{name}" that is not in the arguments')

    def _sync_params_from_devices(self) -> None:
        """Copy the executor's parameter values into ``arg_params``/``aux_params``."""
        assert self._exec is not None
        for params, source in (
            (self._arg_params, self._exec.arg_dict),
            (self._aux_params, self._exec.aux_dict),
        ):
            for name, arr in params.items():  # type: ignore[union-attr]
                if name in source:  # a loaded checkpoint may hold other names too
                    np.copyto(arr._data, source[name]._data, casting="unsafe")
        self._params_dirty = False

    # -- binding -------------------------------------------------------------------
    def _reset_bind(self) -> None:
        if self._params_dirty and self._exec is not None:
            # keep what training wrote into the executor's arrays: the new
            # executor gets the parameters from arg_params/aux_params
            self._sync_params_from_devices()
        self.binded = False
        self._exec = None
        self._data_shapes = None
        self._label_shapes = None

    def _grad_reqs(self, grad_req: Any) -> dict[str, str]:
        """grad_req per argument: parameters ``grad_req`` (fixed ones 'null'), data
        ``grad_req`` only with ``inputs_need_grad``, labels and states 'null'."""
        arg_names = self._symbol.list_arguments()
        if not self.for_training:
            return dict.fromkeys(arg_names, "null")
        if isinstance(grad_req, (list, tuple)):
            return dict(zip(arg_names, grad_req))
        default = grad_req if isinstance(grad_req, str) else "write"
        reqs = {}
        for name in arg_names:
            if name in self._param_names:
                reqs[name] = "null" if name in self._fixed_param_names else default
            elif name in self._data_names:
                reqs[name] = default if self.inputs_need_grad else "null"
            else:
                reqs[name] = "null"
        if isinstance(grad_req, dict):
            reqs.update(grad_req)
        return reqs

    def _bind_executor(
        self, data_shapes: list[DataDesc], label_shapes: list[DataDesc] | None
    ) -> Executor:
        descs = list(data_shapes) + list(label_shapes or [])
        shapes = {d.name: tuple(d.shape) for d in descs}
        types = {d.name: d.dtype for d in descs}
        # parameters take the data's dtype unless they already have values
        for name, value in (self._arg_params or {}).items():
            types.setdefault(name, value.dtype)
        reqs = self._grad_reqs(self._grad_req)
        self._frozen_aux = _frozen_statistics(self._symbol, reqs)
        return simple_bind(self._symbol, reqs, types, shapes)

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
        """Allocate the executor for ``data_shapes``/``label_shapes`` (lists of
        ``DataDesc`` or ``(name, shape)``). Parameters already initialised (by
        ``init_params`` or :meth:`load`) are copied into it; otherwise zero
        parameter arrays are made, to be filled by ``init_params``. With
        ``shared_module`` (a bound module of a network with the same parameters,
        as BucketingModule binds its buckets) the executor uses that module's
        parameter and auxiliary arrays themselves, and its optimizer.
        """
        if force_rebind:
            self._reset_bind()
        if self.binded:
            self.logger.warning("Already bound, ignoring bind()")
            return
        self.for_training = for_training
        self.inputs_need_grad = inputs_need_grad
        self._grad_req = grad_req
        if not for_training:
            assert not inputs_need_grad
        self._data_shapes, self._label_shapes = _parse_data_desc(
            self._data_names, self._label_names, data_shapes, label_shapes
        )
        self._exec = self._bind_executor(self._data_shapes, self._label_shapes)
        self.binded = True
        if shared_module is not None:
            # another bucket of the same network: the very same parameter arrays
            assert shared_module.binded and shared_module.params_initialized
            self._share_arrays(shared_module._exec)
            self._arg_params = shared_module._arg_params
            self._aux_params = shared_module._aux_params
            self.params_initialized = True
            if shared_module.optimizer_initialized:
                self.borrow_optimizer(shared_module)
        elif self.params_initialized:
            # re-binding (or a loaded checkpoint): the parameters go to the executor
            self._exec_set_params(self._arg_params, self._aux_params, allow_extra=True)
            self._adopt_missing_params()
        else:
            assert self._arg_params is None and self._aux_params is None
            self._arg_params = {
                name: zeros(self._exec.arg_dict[name].shape, dtype=self._exec.arg_dict[name].dtype)
                for name in self._param_names
            }
            self._aux_params = {
                name: zeros(self._exec.aux_dict[name].shape, dtype=self._exec.aux_dict[name].dtype)
                for name in self._aux_names
            }

    def _adopt_missing_params(self) -> None:
        """After binding a loaded module, make sure ``arg_params``/``aux_params``
        name every parameter (a checkpoint may lack some: they keep zeros)."""
        assert self._exec is not None
        for params, names, source in (
            (self._arg_params, self._param_names, self._exec.arg_dict),
            (self._aux_params, self._aux_names, self._exec.aux_dict),
        ):
            for name in names:
                if name not in params:  # type: ignore[operator]
                    params[name] = source[name].copy()  # type: ignore[index]

    def reshape(self, data_shapes: Any, label_shapes: Any = None) -> None:
        """Bind again for new input shapes (a new batch size), keeping the
        parameter arrays (shared with other buckets, if any) and the states'
        values."""
        assert self.binded
        self._data_shapes, self._label_shapes = _parse_data_desc(
            self._data_names, self._label_names, data_shapes, label_shapes
        )
        old = self._exec
        assert old is not None
        self._exec = self._bind_executor(self._data_shapes, self._label_shapes)
        self._share_arrays(old)
        self._exec.copy_params_from(
            {
                n: old.arg_dict[n]
                for n in self._state_names
                if old.arg_dict[n].shape == self._exec.arg_dict[n].shape
            }
        )

    def _share_arrays(self, source: Executor) -> None:
        """Make the executor use ``source``'s parameter and auxiliary arrays (the
        same objects, so an update through either is seen by both)."""
        exe = self._exec
        assert exe is not None
        for name in self._param_names:
            if name not in source.arg_dict:
                continue
            if source.arg_dict[name].shape != exe.arg_dict[name].shape:
                raise ValueError(
                    f"shared parameter {name!r} has shape "
                    f"{source.arg_dict[name].shape} there and "
                    f"{exe.arg_dict[name].shape} here"
                )
            exe.arg_dict[name] = source.arg_dict[name]
        for name in self._aux_names:
            if name in source.aux_dict:
                exe.aux_dict[name] = source.aux_dict[name]

    # -- optimizer ------------------------------------------------------------------
    def init_optimizer(
        self,
        kvstore: Any = "local",
        optimizer: Any = "sgd",
        optimizer_params: Any = (("learning_rate", 0.01),),
        force_init: bool = False,
    ) -> None:
        """Create the optimizer and its updater. An optimizer given by name gets
        ``rescale_grad = 1 / batch_size`` unless ``optimizer_params`` sets it, and
        the parameters' names by index (so ``_weight``/``_gamma`` alone get weight
        decay, and the symbol's ``__lr_mult__``/``__wd_mult__`` apply)."""
        assert self.binded and self.params_initialized
        if self.optimizer_initialized and not force_init:
            self.logger.warning("optimizer already initialized, ignoring...")
            return
        if self._params_dirty:
            self._sync_params_from_devices()
        if kvstore is not None and not isinstance(kvstore, str):
            warnings.warn(
                "symgrad's Module updates on one device: the kvstore is not used", stacklevel=2
            )
        batch_size = self._data_shapes[0].shape[  # type: ignore[index]
            DataDesc.get_batch_axis(getattr(self._data_shapes[0], "layout", None))
        ]
        rescale_grad = 1.0 / batch_size
        idx2name = dict(enumerate(self._param_names))
        if isinstance(optimizer, str):
            params = dict(optimizer_params)
            params.setdefault("rescale_grad", rescale_grad)
            optimizer = opt.create(optimizer, sym=self._symbol, param_idx2name=idx2name, **params)
        else:
            assert isinstance(optimizer, opt.Optimizer)
            if optimizer.rescale_grad != rescale_grad:
                warnings.warn(
                    "Optimizer created manually outside Module but rescale_grad "
                    "is not normalized to 1.0/batch_size/num_workers "
                    f"({optimizer.rescale_grad} vs. {rescale_grad}). "
                    "Is this intended?",
                    stacklevel=2,
                )
            if not optimizer.idx2name:
                optimizer.idx2name = idx2name.copy()
        self._optimizer = optimizer
        self._kvstore = None
        self._update_on_kvstore = False
        self._updater = opt.get_updater(optimizer)
        self.optimizer_initialized = True
        if self._preload_opt_states is not None:
            self.load_optimizer_states(self._preload_opt_states)
            self._preload_opt_states = None

    def save_optimizer_states(self, fname: str) -> None:
        """Write the updater's states (MXNet's pickle) to ``fname``."""
        assert self.optimizer_initialized
        with open(fname, "wb") as fout:
            fout.write(self._updater.get_states())

    def load_optimizer_states(self, fname: str) -> None:
        """Read updater states written by :meth:`save_optimizer_states` (here or
        by MXNet)."""
        assert self.optimizer_initialized
        with open(fname, "rb") as fin:
            self._updater.set_states(fin.read())

    # -- computing ------------------------------------------------------------------
    def forward(self, data_batch: DataBatch, is_train: bool | None = None) -> None:
        """Load ``data_batch`` (its labels too, when the module was bound with
        labels) and compute the outputs; ``is_train`` defaults to
        ``for_training``. A batch of other shapes re-binds first (:meth:`reshape`).
        """
        assert self.binded and self.params_initialized
        current = tuple(tuple(d.shape) for d in self._data_shapes)  # type: ignore[union-attr]
        new = tuple(tuple(d.shape) for d in data_batch.data)
        if current != new:
            provided = getattr(data_batch, "provide_data", None)
            new_dshape = provided or [
                DataDesc(d.name, shape, d.dtype, d.layout)
                for d, shape in zip(self._data_shapes, new)
            ]  # type: ignore[arg-type]
            provided_label = getattr(data_batch, "provide_label", None)
            if provided_label:
                new_lshape = provided_label
            elif data_batch.label and self._label_shapes:
                new_lshape = [
                    DataDesc(d.name, tuple(lab.shape), d.dtype, d.layout)
                    for d, lab in zip(self._label_shapes, data_batch.label)
                ]
            else:
                new_lshape = None
            self.reshape(new_dshape, new_lshape)
        exe = self._exec
        assert exe is not None
        for desc, value in zip(self._data_shapes, data_batch.data):  # type: ignore[arg-type]
            np.copyto(exe.arg_dict[desc.name]._data, _numpy(value), casting="unsafe")
        if self._label_shapes and data_batch.label:
            for desc, value in zip(self._label_shapes, data_batch.label):
                np.copyto(exe.arg_dict[desc.name]._data, _numpy(value), casting="unsafe")
        is_train = self.for_training if is_train is None else is_train
        kept = (
            [exe.aux_dict[name].asnumpy().copy() for name in self._frozen_aux] if is_train else []
        )
        exe.forward(is_train=is_train)
        for name, value in zip(self._frozen_aux, kept):  # see _frozen_statistics
            np.copyto(exe.aux_dict[name]._data, value)

    def backward(self, out_grads: Any = None) -> None:
        """Gradients of the last (training) forward into the gradient arrays."""
        assert self.binded and self.params_initialized
        assert self.for_training, "re-bind with for_training=True to run backward"
        self._exec.backward(out_grads=out_grads)  # type: ignore[union-attr]

    def update(self) -> None:
        """One optimizer step on every parameter that has a gradient (indices are
        positions among the parameters, as MXNet numbers them)."""
        assert self.binded and self.params_initialized and self.optimizer_initialized
        self._params_dirty = True
        exe = self._exec
        indices, grads, weights = [], [], []
        for index, name in enumerate(self._param_names):
            grad = exe.grad_dict.get(name)  # type: ignore[union-attr]
            if grad is None:
                continue
            indices.append(index)
            grads.append(grad)
            weights.append(exe.arg_dict[name])  # type: ignore[union-attr]
        if indices:
            self._updater(indices, grads, weights)

    def get_outputs(self, merge_multi_context: bool = True) -> list[NDArray]:
        """The outputs of the last forward (the executor's arrays)."""
        assert self.binded and self.params_initialized
        outputs = list(self._exec.outputs)  # type: ignore[union-attr]
        return outputs if merge_multi_context else [[out] for out in outputs]

    def get_input_grads(self, merge_multi_context: bool = True) -> list[NDArray]:
        """The gradients of the data inputs (bind with ``inputs_need_grad``)."""
        assert self.binded and self.params_initialized and self.inputs_need_grad
        grads = [self._exec.grad_dict[name] for name in self._data_names]  # type: ignore
        return grads if merge_multi_context else [[g] for g in grads]

    def get_states(self, merge_multi_context: bool = True) -> list[NDArray]:
        """The state inputs' arrays."""
        assert self.binded and self.params_initialized
        states = [self._exec.arg_dict[name] for name in self._state_names]  # type: ignore
        return states if merge_multi_context else [[s] for s in states]

    def set_states(self, states: Any = None, value: float | None = None) -> None:
        """Set the state inputs from arrays (``states``) or to one ``value``."""
        assert self.binded and self.params_initialized
        for i, name in enumerate(self._state_names):
            target = self._exec.arg_dict[name]._data  # type: ignore[union-attr]
            if states is not None:
                source = states[i][0] if isinstance(states[i], (list, tuple)) else states[i]
                np.copyto(target, _numpy(source), casting="unsafe")
            else:
                target[...] = value

    def update_metric(self, eval_metric: Any, labels: Any, pre_sliced: bool = False) -> None:
        """Add the last forward's outputs and ``labels`` to ``eval_metric``
        (by name, through ``update_dict``; padded samples count, as in MXNet)."""
        label_dict = OrderedDict(zip(self._label_names, labels or []))
        preds = OrderedDict(zip(self._output_names, self._exec.outputs))  # type: ignore
        eval_metric.update_dict(label_dict, preds)

    def borrow_optimizer(self, shared_module: Module) -> None:
        """Use ``shared_module``'s optimizer and updater."""
        assert shared_module.optimizer_initialized
        self._optimizer = shared_module._optimizer
        self._updater = shared_module._updater
        self.optimizer_initialized = True
