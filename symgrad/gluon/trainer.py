"""``gluon.Trainer``: applies an optimizer to a set of Parameters after backward.

As MXNet 1.x's Trainer on one device: the parameters are indexed in sorted name
order (for a dict or ParameterDict), ``step(batch_size)`` rescales gradients by
``1 / batch_size`` and updates every parameter whose gradient a backward has
written since the last step, raising MXNet's error for one that it has not.

The KVStore is chosen at the first step as MXNet chooses it: a ``KVStore``
instance is used as given; a name with ``dist`` makes a distributed store; any
other name makes none (one device needs no aggregation). With a store, the
gradients are pushed and pulled back summed over workers (``pushpull``), or,
with ``update_on_kvstore`` (the default for a distributed store), pushed to it,
updated there by the optimizer, and the weights pulled back.
"""

from __future__ import annotations

import os
from typing import Any

from .. import optimizer as opt
from .. import training_step
from .parameter import Parameter, ParameterDict

__all__ = ["Trainer"]


class Trainer:
    """Updates Parameters with an optimizer, from the gradients backward wrote.

    Parameters
    ----------
    params : ParameterDict, dict of str to Parameter, or list of Parameter
        The parameters to train (a dict's are taken in sorted key order).
    optimizer : str or Optimizer
        An optimizer name for ``mx.optimizer.create``, or an instance.
    optimizer_params : dict, optional
        Arguments of the optimizer (only with a name), e.g. ``{'learning_rate': 0.1}``.
    kvstore : str or KVStore
        The store that sums gradients over workers (see the module's description).
    compression_params : dict, optional
        Gradient compression for the store, e.g. ``{'type': '2bit', 'threshold': 0.5}``.
    update_on_kvstore : bool, optional
        Whether the store applies the optimizer (default: MXNet's choice).

    Examples
    --------
    >>> import symgrad as mx
    >>> w = mx.gluon.Parameter("w", shape=(2,))
    >>> w.initialize(mx.init.One())
    >>> trainer = mx.gluon.Trainer([w], "sgd", {"learning_rate": 0.5})
    >>> with mx.autograd.record():
    ...     loss = (w.data() * w.data()).sum()
    >>> loss.backward()
    >>> trainer.step(1)
    >>> w.data().asnumpy().tolist()
    [0.0, 0.0]
    """

    def __init__(
        self,
        params: Any,
        optimizer: Any,
        optimizer_params: dict | None = None,
        kvstore: Any = "device",
        compression_params: dict | None = None,
        update_on_kvstore: bool | None = None,
    ):
        if isinstance(params, (dict, ParameterDict)):
            params = [params[key] for key in sorted(params.keys())]
        if not isinstance(params, (list, tuple)):
            raise ValueError(
                f"First argument must be a list or dict of Parameters, got {type(params)}."
            )
        self._params: list[Parameter] = []
        self._param2idx: dict[str, int] = {}
        for i, param in enumerate(params):
            if not isinstance(param, Parameter):
                raise ValueError(
                    f"First argument must be a list or dict of Parameters, got "
                    f"list of {type(param)}."
                )
            self._param2idx[param.name] = i
            self._params.append(param)
            param.list_ctx()  # MXNet reads every context now: uninitialized raises
        self._compression_params = compression_params
        self._init_optimizer(optimizer, optimizer_params or {})
        self._scale = self._optimizer.rescale_grad
        self._kvstore_params = {"kvstore": kvstore, "update_on_kvstore": update_on_kvstore}
        self._kvstore = None
        self._update_on_kvstore = None
        self._distributed = None
        self._kv_initialized = False
        self._params_to_init: list[Parameter] = list(self._params)

    def _init_kvstore(self) -> None:
        """Make or take the KVStore and decide ``update_on_kvstore``, as MXNet."""
        from .. import kvstore as kvs

        # MXNet reads every parameter's array to make its store: one still waiting
        # for its shape raises DeferredInitializationError here, not a stale-gradient
        # warning later
        for param in self._params:
            param.data()
        config = self._kvstore_params
        kvstore, update_on_kvstore = config["kvstore"], None
        if isinstance(kvstore, kvs.KVStore):
            kv = kvstore
        elif isinstance(kvstore, str) and "dist" in kvstore:
            kv = kvs.create(kvstore)
        elif kvstore is None or isinstance(kvstore, str):
            kv = None  # one device, one machine: nothing to aggregate
        else:
            raise TypeError("kvstore must be KVStore, str or None")
        update_on_kvstore = kv is not None and bool(
            int(os.environ.get("MXNET_UPDATE_ON_KVSTORE", "1"))
        )
        self._distributed = kv is not None and "dist" in kv.type
        if self._distributed and "async" in kv.type:
            update_on_kvstore = True
            if config["update_on_kvstore"] is False:
                raise ValueError("Please set update_on_kvstore=True when training in async mode.")
        if config["update_on_kvstore"] is not None:
            update_on_kvstore = config["update_on_kvstore"]
        if update_on_kvstore and not kv.is_capable("optimizer"):
            if config["update_on_kvstore"]:
                raise ValueError(
                    f"Please set update_on_kvstore=False when training with {type(kv)}"
                )
            update_on_kvstore = False
        if kv is not None:
            if self._compression_params:
                kv.set_gradient_compression(self._compression_params)
            if update_on_kvstore:
                kv.set_optimizer(self._optimizer)
            self._kvstore, self._update_on_kvstore = kv, update_on_kvstore
        else:
            self._kvstore, self._update_on_kvstore = None, None
        self._kv_initialized = True

    def _init_params(self) -> None:
        """Give the store each parameter's value (rank 0's in a distributed one)
        and pull it back into every copy."""
        for param in self._params_to_init:
            idx = self._param2idx[param.name]
            arrays = param.list_data()
            self._kvstore.init(idx, arrays[0])
            self._kvstore.pull(idx, arrays, priority=-idx)
        self._params_to_init = []

    def _init_optimizer(self, optimizer: Any, optimizer_params: dict) -> None:
        param_dict = dict(enumerate(self._params))
        if isinstance(optimizer, opt.Optimizer):
            if optimizer_params:
                raise AssertionError(
                    "optimizer_params must be None if optimizer is an "
                    "instance of Optimizer instead of str"
                )
            self._optimizer = optimizer
            self._optimizer.param_dict = param_dict
        else:
            self._optimizer = opt.create(optimizer, param_dict=param_dict, **optimizer_params)
        self._updaters = [opt.get_updater(self._optimizer)]

    # -- the optimizer --------------------------------------------------------
    @property
    def optimizer(self) -> opt.Optimizer:
        """The optimizer."""
        if not isinstance(self._optimizer, opt.Optimizer):
            raise UserWarning("Optimizer has not been initialized yet")
        return self._optimizer

    @property
    def learning_rate(self) -> float:
        """The optimizer's current learning rate."""
        if not isinstance(self._optimizer, opt.Optimizer):
            raise UserWarning(
                "Optimizer has to be defined before its learning rate can be accessed."
            )
        return self._optimizer.learning_rate

    def set_learning_rate(self, lr: float) -> None:
        """Set the optimizer's learning rate (refused when a scheduler sets it)."""
        if not isinstance(self._optimizer, opt.Optimizer):
            raise UserWarning("Optimizer has to be defined before its learning rate is mutated.")
        self._optimizer.set_learning_rate(lr)

    # -- steps ------------------------------------------------------------------
    def step(self, batch_size: int, ignore_stale_grad: bool = False) -> None:
        """One update of every parameter with a gradient, scaled by 1/batch_size.

        Parameters
        ----------
        batch_size : int
            The batch size the gradients were summed over; they are multiplied by
            ``1 / batch_size`` (times the optimizer's own ``rescale_grad``).
        ignore_stale_grad : bool
            Skip parameters whose gradient no backward wrote since the last step
            instead of raising.
        """
        self._check_and_rescale_grad(self._scale / batch_size)
        if not self._kv_initialized:
            self._init_kvstore()
        if self._kvstore is not None and self._params_to_init:
            self._init_params()
        self._allreduce_grads()
        self._update(ignore_stale_grad)

    def _check_and_rescale_grad(self, scale: float) -> None:
        if self._update_on_kvstore and self._distributed and self._kv_initialized:
            if self._optimizer.rescale_grad != scale:
                raise UserWarning(
                    "Possible change in the `batch_size` from previous `step` "
                    "detected. Optimizer gradient normalizing factor will not "
                    "change w.r.t new batch_size when update_on_kvstore=True "
                    "and when distributed kvstore is used."
                )
        self._optimizer.rescale_grad = scale

    def allreduce_grads(self) -> None:
        """Sum gradients across workers through the KVStore (without one: nothing
        to do); with ``update``, the two halves of ``step``."""
        if not self._kv_initialized:
            self._init_kvstore()
        if self._kvstore is not None and self._params_to_init:
            self._init_params()
        if self._update_on_kvstore:
            raise AssertionError(
                "allreduce_grads() when parameters are updated on kvstore "
                "is not supported. Try setting `update_on_kvstore` to False "
                "when creating trainer."
            )
        self._allreduce_grads()

    def _allreduce_grads(self) -> None:
        """Push each gradient; pull back the sum over workers unless the store
        applies the update itself."""
        if self._kvstore is None:
            return
        # one call for all parameters (MXNet makes one per parameter; the values
        # are the same, and a distributed store then sends every request at once)
        keys = [i for i, param in enumerate(self._params) if param.grad_req != "null"]
        grads = [self._params[i].list_grad() for i in keys]
        if not keys:
            return
        if self._update_on_kvstore:
            self._kvstore.push(keys, grads)
        else:
            self._kvstore.pushpull(keys, grads)

    def update(self, batch_size: int, ignore_stale_grad: bool = False) -> None:
        """The update half of ``step``, after ``allreduce_grads``."""
        if not self._kv_initialized:
            self._init_kvstore()
        if self._update_on_kvstore:
            raise AssertionError(
                "update() when parameters are updated on kvstore is not "
                "supported. Try setting `update_on_kvstore` to False when "
                "creating trainer."
            )
        self._check_and_rescale_grad(self._scale / batch_size)
        self._update(ignore_stale_grad)

    def _update(self, ignore_stale_grad: bool = False) -> None:
        indices, grads, weights, pulls = [], [], [], []
        on_kvstore = self._kvstore is not None and self._update_on_kvstore
        for i, param in enumerate(self._params):
            if param.grad_req == "null":
                continue
            arrays = param.list_data()
            if not ignore_stale_grad:
                for data in arrays:
                    if not data._fresh:  # (_fresh_grad, read as a plain attribute)
                        raise UserWarning(
                            f"Gradient of Parameter `{param.name}` on context {data.context} "
                            "has not been updated by backward since last `step`. This could "
                            "mean a bug in your model that made it only use a subset of the "
                            "Parameters (Blocks) for this iteration. If you are intentionally "
                            "only using a subset, call step with ignore_stale_grad=True to "
                            "suppress this warning and skip updating of Parameters with "
                            "stale gradient"
                        )
            if on_kvstore:
                # the store applied the update: fetch the new weights (below)
                pulls.append((i, arrays))
                for data in arrays:
                    data._fresh = False
                continue
            for data, grad in zip(arrays, param.list_grad()):
                if not ignore_stale_grad or data._fresh:
                    indices.append(i)
                    grads.append(grad)
                    weights.append(data)
                    data._fresh = False
        if pulls:
            self._kvstore.pull([i for i, _ in pulls], out=[arrays for _, arrays in pulls])
        if indices:
            # the updates may have been computed ahead, fused into the backward
            training_step.update(self, self._updaters[0], indices, grads, weights)

    # -- states -----------------------------------------------------------------
    def save_states(self, fname: str) -> None:
        """Write the optimizer and its states as MXNet does (a pickle real MXNet's
        ``Trainer.load_states`` reads)."""
        if self._optimizer is None:
            raise AssertionError("no optimizer")
        if not self._kv_initialized:
            self._init_kvstore()
        if self._update_on_kvstore:
            self._kvstore.save_optimizer_states(fname, dump_optimizer=True)
            return
        with open(fname, "wb") as file:
            file.write(self._updaters[0].get_states(dump_optimizer=True))

    def load_states(self, fname: str) -> None:
        """Read states written by ``save_states`` (here or by MXNet); the optimizer
        saved with them replaces this Trainer's."""
        if not self._kv_initialized:
            self._init_kvstore()
        if self._kvstore is not None and self._kvstore.lost:
            # a parameter server died: new ones get the parameters (the
            # checkpoint's, once loaded) at the next step, as at the first
            self._kvstore.resume()
            self._params_to_init = list(self._params)
        if self._update_on_kvstore:
            self._kvstore.load_optimizer_states(fname)
            # the file's optimizer replaces the store's; the Trainer follows it
            updater = self._kvstore._updater
            if isinstance(updater, opt.Updater):
                self._optimizer = updater.optimizer
            elif isinstance(updater, opt.Optimizer):
                self._optimizer = updater
            self._optimizer.param_dict = dict(enumerate(self._params))
            return
        with open(fname, "rb") as file:
            states = file.read()
        for updater in self._updaters:
            updater.set_states(states)
            updater.optimizer = self._updaters[0].optimizer
        self._optimizer = self._updaters[0].optimizer
        self._optimizer.param_dict = dict(enumerate(self._params))
