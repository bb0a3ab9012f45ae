"""``mx.mod`` / ``mx.module``: MXNet 1.x's Module API over symgrad's executors.

``Module`` binds a Symbol to input shapes, holds its parameters and optimizer,
and runs ``fit``/``score``/``predict`` as MXNet 1.9.1 does.
"""

from .base_module import BaseModule
from .module import Module

__all__ = ["BaseModule", "Module"]
