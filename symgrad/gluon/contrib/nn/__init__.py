"""``gluon.contrib.nn``: Concurrent, HybridConcurrent and Identity."""

from .basic_layers import *  # noqa: F401,F403
