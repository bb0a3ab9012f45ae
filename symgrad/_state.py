"""Per-thread (and per-asyncio-task) autograd state: recording and training.

Each thread starts with both flags off, as in MXNet; contextvars also keep
concurrent asyncio tasks apart.
"""

from contextvars import ContextVar

recording: ContextVar[bool] = ContextVar("symgrad_recording", default=False)
training: ContextVar[bool] = ContextVar("symgrad_training", default=False)

# Anomaly detection (see symgrad.anomaly): a plain module flag, process-wide like a
# debugger switch, because recording reads it on every op and a ContextVar read costs
# more than an attribute read.
anomaly: bool = False
