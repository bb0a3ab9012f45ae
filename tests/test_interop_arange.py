"""nd.arange gives MXNet 1.9.1's values, element for element, for float and
integer dtypes, fractional steps and negative steps (interop virtualenv)."""

from __future__ import annotations

import json

import pytest
from mxnet_interop import printed_by_both

pytestmark = pytest.mark.interop

SCRIPT = """
import json
cases = [(1.3, 456.6, 1.3, 'int32'), (0, 1, 0.1, 'float32'), (5, None, 1, 'float32'),
         (2, 20, 3, 'int64'), (0.5, 100.3, 0.7, 'float64'), (10, 0, -1.5, 'float32'),
         (0, 1000, 0.37, 'float32')]
out = []
for a, b, c, d in cases:
    v = mx.nd.arange(a, b, c, dtype=d) if b is not None else mx.nd.arange(a, dtype=d)
    out.append(v.asnumpy().tolist())
print(json.dumps(out))
"""


def test_arange_equals_mxnet(mxnet_python, tmp_path, capsys):
    ours, theirs = printed_by_both(mxnet_python, SCRIPT, tmp_path, capsys)
    assert json.loads(ours) == json.loads(theirs)
