"""MXNet's ``contrib`` ops that run on a CPU, under their registry names
(``_contrib_<name>``; ``mx.nd.contrib.<name>`` strips the prefix), and the ops
behind ``mx.operator`` (Custom) and contrib's control flow. Importing this package
registers them all."""

from . import attention, basic, boxes, callbacks, spatial  # noqa: F401  (registration)
from .callbacks import CUSTOM_CALLBACK_FACTORY

__all__ = ["CUSTOM_CALLBACK_FACTORY"]
