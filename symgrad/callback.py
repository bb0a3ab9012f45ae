"""``mx.callback``: callbacks for training loops, logging as MXNet logs.

Batch-end callbacks take a ``BatchEndParam`` (``epoch``, ``nbatch``,
``eval_metric``, ``locals``); epoch-end checkpoint callbacks take
``(iter_no, sym, arg_params, aux_params)``.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import namedtuple
from collections.abc import Callable
from typing import Any

__all__ = [
    "BatchEndParam",
    "Speedometer",
    "LogValidationMetricsCallback",
    "do_checkpoint",
    "log_train_metric",
    "ProgressBar",
    "module_checkpoint",
]

BatchEndParam = namedtuple("BatchEndParams", ["epoch", "nbatch", "eval_metric", "locals"])
BatchEndParam.__doc__ = """What a batch-end callback receives: the epoch, the batch
number within it, the training metric (or None) and the caller's locals."""


def _metric_message(pairs: list) -> tuple[str, tuple]:
    return "\t%s=%f" * len(pairs), sum(pairs, ())


class Speedometer:
    """Log the training speed, and the metric's values, every ``frequent``
    batches: ``Epoch[0] Batch [50-100]\\tSpeed: 1234.56 samples/sec\\taccuracy=0.5``.
    With ``auto_reset`` the metric's local statistics are reset after each log
    (the range then covers the batches since the last one)."""

    def __init__(self, batch_size: int, frequent: int = 50, auto_reset: bool = True):
        self.batch_size = batch_size
        self.frequent = frequent
        self.init = False
        self.tic = 0.0
        self.last_count = 0
        self.auto_reset = auto_reset

    def __call__(self, param: Any) -> None:
        """Log when ``param.nbatch`` is a multiple of ``frequent``."""
        count = param.nbatch
        if self.last_count > count:  # a new epoch: start timing again
            self.init = False
        self.last_count = count
        if not self.init:
            self.init = True
            self.tic = time.time()
            return
        if count % self.frequent != 0:
            return
        elapsed = time.time() - self.tic
        speed = self.frequent * self.batch_size / elapsed if elapsed > 0 else float("inf")
        if param.eval_metric is not None:
            pairs = param.eval_metric.get_name_value()
            values, args = _metric_message(pairs)
            if self.auto_reset:
                param.eval_metric.reset_local()
                logging.info(
                    "Epoch[%d] Batch [%d-%d]\tSpeed: %.2f samples/sec" + values,
                    param.epoch,
                    count - self.frequent,
                    count,
                    speed,
                    *args,
                )
            else:
                logging.info(
                    "Epoch[%d] Batch [0-%d]\tSpeed: %.2f samples/sec" + values,
                    param.epoch,
                    count,
                    speed,
                    *args,
                )
        else:
            logging.info("Iter[%d] Batch [%d]\tSpeed: %.2f samples/sec", param.epoch, count, speed)
        self.tic = time.time()


class LogValidationMetricsCallback:
    """Log each validation metric at the end of an epoch:
    ``Epoch[0] Validation-accuracy=0.900000``."""

    def __call__(self, param: Any) -> None:
        """Log ``param.eval_metric``'s values."""
        if not param.eval_metric:
            return
        for name, value in param.eval_metric.get_name_value():
            logging.info("Epoch[%d] Validation-%s=%f", param.epoch, name, value)


def log_train_metric(period: int, auto_reset: bool = False) -> Callable[[Any], None]:
    """A batch-end callback logging the training metric every ``period``
    batches: ``Iter[0] Batch[10] Train-accuracy=0.500000``."""

    def _callback(param: Any) -> None:
        if param.nbatch % period == 0 and param.eval_metric is not None:
            for name, value in param.eval_metric.get_name_value():
                logging.info(
                    "Iter[%d] Batch[%d] Train-%s=%f", param.epoch, param.nbatch, name, value
                )
            if auto_reset:
                param.eval_metric.reset_local()

    return _callback


class ProgressBar:
    """A text progress bar of ``length`` characters over ``total`` batches,
    printed to stdout (``[====----] 50.0%``)."""

    def __init__(self, total: int, length: int = 80):
        self.bar_len = length
        self.total = total

    def __call__(self, param: Any) -> None:
        """Print the bar for ``param.nbatch``."""
        count = param.nbatch
        filled = int(round(self.bar_len * count / float(self.total)))
        percents = round(100.0 * count / float(self.total), 1)
        bar = "=" * filled + "-" * (self.bar_len - filled)
        sys.stdout.write(f"[{bar}] {percents}%\r")
        sys.stdout.flush()


def __getattr__(name: str) -> Any:
    """``callback.save_checkpoint`` is ``model.save_checkpoint``, as in MXNet (found
    lazily: ``model`` imports this module)."""
    if name == "save_checkpoint":
        from .model import save_checkpoint

        return save_checkpoint
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def do_checkpoint(prefix: str, period: int = 1) -> Callable[..., None]:
    """An epoch-end callback saving a checkpoint every ``period`` epochs (epoch
    numbers in file names count from 1)."""
    period = int(max(1, period))

    def _callback(
        iter_no: int, sym: Any = None, arg: dict | None = None, aux: dict | None = None
    ) -> None:
        if (iter_no + 1) % period == 0:
            from .model import save_checkpoint  # model imports this module

            save_checkpoint(prefix, iter_no + 1, sym, arg or {}, aux or {})

    return _callback


def module_checkpoint(
    mod: Any, prefix: str, period: int = 1, save_optimizer_states: bool = False
) -> Callable[..., None]:
    """An epoch-end callback calling ``mod.save_checkpoint`` every ``period``
    epochs."""
    period = int(max(1, period))

    def _callback(iter_no: int, sym: Any = None, arg: Any = None, aux: Any = None) -> None:
        if (iter_no + 1) % period == 0:
            mod.save_checkpoint(prefix, iter_no + 1, save_optimizer_states)

    return _callback
