"""``mx.model``: MXNet 1.x checkpoint files.

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
from typing import Any

from . import symbol as sym
from .callback import BatchEndParam
from .ndarray import NDArray
from .ndarray.serialization import load as nd_load
from .ndarray.serialization import save as nd_save

__all__ = ["BatchEndParam", "load_checkpoint", "load_params", "save_checkpoint"]


def save_checkpoint(prefix: str, epoch: int, symbol: Any, arg_params: dict[str, NDArray],
                    aux_params: dict[str, NDArray], remove_amp_cast: bool = True) -> None:
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
    if not isinstance(saved, dict):
        raise ValueError(f"Invalid param file {fname}: it holds a list, not named arrays")
    for key, value in saved.items():
        kind, _, name = key.partition(":")
        if kind == "arg":
            arg_params[name] = value
        elif kind == "aux":
            aux_params[name] = value
    return arg_params, aux_params


def load_checkpoint(prefix: str, epoch: int) -> tuple[Any, dict[str, NDArray],
                                                       dict[str, NDArray]]:
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
