"""``gluon.Trainer``: applies an optimizer to a set of Parameters after backward.

As MXNet 1.x's Trainer on one device: the parameters are indexed in sorted name
order (for a dict or ParameterDict), ``step(batch_size)`` rescales gradients by
``1 / batch_size`` and updates every parameter whose gradient a backward has
written since the last step, raising MXNet's error for one that it has not. There
is one device, so no KVStore is made: the ``kvstore`` arguments are accepted and
kept (a KVStore is another module's job).
"""

from __future__ import annotations

from typing import Any

from .. import optimizer as opt
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
        Accepted for MXNet compatibility; one device needs none.
    compression_params : dict, optional
        Accepted (gradient compression applies to a KVStore).
    update_on_kvstore : bool, optional
        Accepted; updates always run here, on the Trainer's updater.

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

    def __init__(self, params: Any, optimizer: Any, optimizer_params: dict | None = None,
                 kvstore: Any = "device", compression_params: dict | None = None,
                 update_on_kvstore: bool | None = None):
        if isinstance(params, (dict, ParameterDict)):
            params = [params[key] for key in sorted(params.keys())]
        if not isinstance(params, (list, tuple)):
            raise ValueError(f"First argument must be a list or dict of Parameters, got "
                             f"{type(params)}.")
        self._params: list[Parameter] = []
        self._param2idx: dict[str, int] = {}
        for i, param in enumerate(params):
            if not isinstance(param, Parameter):
                raise ValueError(f"First argument must be a list or dict of Parameters, got "
                                 f"list of {type(param)}.")
            self._param2idx[param.name] = i
            self._params.append(param)
        self._compression_params = compression_params
        self._init_optimizer(optimizer, optimizer_params or {})
        self._scale = self._optimizer.rescale_grad
        if self._optimizer.aggregate_num > 1 and update_on_kvstore:
            raise ValueError("Cannot set update_on_kvstore=True when optimizer.aggregate_num "
                             "> 1.")
        self._kvstore_params = {"kvstore": kvstore, "update_on_kvstore": update_on_kvstore}
        # one device: no KVStore, updates run on this Trainer's updater (MXNet's
        # attributes for that case)
        self._kvstore = None
        self._update_on_kvstore = None
        self._distributed = None

    def _init_optimizer(self, optimizer: Any, optimizer_params: dict) -> None:
        param_dict = dict(enumerate(self._params))
        if isinstance(optimizer, opt.Optimizer):
            if optimizer_params:
                raise AssertionError("optimizer_params must be None if optimizer is an "
                                     "instance of Optimizer instead of str")
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
            raise UserWarning("Optimizer has to be defined before its learning rate can be "
                              "accessed.")
        return self._optimizer.learning_rate

    def set_learning_rate(self, lr: float) -> None:
        """Set the optimizer's learning rate (refused when a scheduler sets it)."""
        if not isinstance(self._optimizer, opt.Optimizer):
            raise UserWarning("Optimizer has to be defined before its learning rate is "
                              "mutated.")
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
        self._optimizer.rescale_grad = self._scale / batch_size
        self._allreduce_grads()
        self._update(ignore_stale_grad)

    def allreduce_grads(self) -> None:
        """Sum gradients across devices (one device: nothing to do); with ``update``,
        the two halves of ``step``."""
        self._allreduce_grads()

    def _allreduce_grads(self) -> None:
        """One device: every gradient is already complete."""

    def update(self, batch_size: int, ignore_stale_grad: bool = False) -> None:
        """The update half of ``step``, after ``allreduce_grads``."""
        self._optimizer.rescale_grad = self._scale / batch_size
        self._update(ignore_stale_grad)

    def _update(self, ignore_stale_grad: bool = False) -> None:
        indices, grads, weights = [], [], []
        for i, param in enumerate(self._params):
            if param.grad_req == "null":
                continue
            arrays = param.list_data()
            if not ignore_stale_grad:
                for data in arrays:
                    if not data._fresh_grad:
                        raise UserWarning(
                            f"Gradient of Parameter `{param.name}` on context {data.context} "
                            "has not been updated by backward since last `step`. This could "
                            "mean a bug in your model that made it only use a subset of the "
                            "Parameters (Blocks) for this iteration. If you are intentionally "
                            "only using a subset, call step with ignore_stale_grad=True to "
                            "suppress this warning and skip updating of Parameters with "
                            "stale gradient")
            for data, grad in zip(arrays, param.list_grad()):
                if not ignore_stale_grad or data._fresh_grad:
                    indices.append(i)
                    grads.append(grad)
                    weights.append(data)
                    data._fresh_grad = False
        if indices:
            self._updaters[0](indices, grads, weights)

    # -- states -----------------------------------------------------------------
    def save_states(self, fname: str) -> None:
        """Write the optimizer and its states as MXNet does (a pickle real MXNet's
        ``Trainer.load_states`` reads)."""
        if self._optimizer is None:
            raise AssertionError("no optimizer")
        with open(fname, "wb") as file:
            file.write(self._updaters[0].get_states(dump_optimizer=True))

    def load_states(self, fname: str) -> None:
        """Read states written by ``save_states`` (here or by MXNet); the optimizer
        saved with them replaces this Trainer's."""
        with open(fname, "rb") as file:
            states = file.read()
        for updater in self._updaters:
            updater.set_states(states)
            updater.optimizer = self._updaters[0].optimizer
        self._optimizer = self._updaters[0].optimizer
        self._optimizer.param_dict = dict(enumerate(self._params))
