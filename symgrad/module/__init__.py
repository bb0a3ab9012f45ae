"""``mx.mod`` / ``mx.module``: MXNet 1.x's Module API over symgrad's executors.

``Module`` binds a Symbol to input shapes, holds its parameters and optimizer,
and runs ``fit``/``score``/``predict`` as MXNet 1.9.1 does; ``BucketingModule``
keeps one Module per bucket (sequence length), all sharing their parameters.
"""

from .base_module import BaseModule
from .bucketing_module import BucketingModule
from .module import Module

__all__ = ["BaseModule", "BucketingModule", "Module"]
