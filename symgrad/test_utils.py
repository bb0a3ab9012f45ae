"""MXNet's ``mx.test_utils`` (being rewritten with MXNet 1.9.1's signatures).

symgrad's own op-testing machinery is :mod:`symgrad.op_testing`.
"""

from __future__ import annotations

from .op_testing import almost_equal, assert_almost_equal, same

__all__ = ["almost_equal", "assert_almost_equal", "same"]
