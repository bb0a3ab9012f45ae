"""Per-thread (and per-asyncio-task) autograd state: recording and training.

Each thread starts with both flags off, as in MXNet; contextvars also keep
concurrent asyncio tasks apart.
"""

from contextvars import ContextVar

from symgrad_compiler.chains import ChainTemplate
from symgrad_compiler.tape import Tape, Template

# While recording: the Tape the recorded ops go on (truthy); otherwise False.
recording: ContextVar[Tape | bool] = ContextVar("symgrad_recording", default=False)
training: ContextVar[bool] = ContextVar("symgrad_training", default=False)
# The tape of this thread's latest recording, which backward reads its key from
# (it holds its nodes weakly, and backward drops it).
last_tape: ContextVar[Tape | None] = ContextVar("symgrad_last_tape", default=None)
# The structure of the graph this thread's latest backward differentiated from a
# tape, with what backward keeps for it: the next recording is checked against it.
template: ContextVar[Template | None] = ContextVar("symgrad_template", default=None)
# Likewise for the latest chain (one-input ops back to one leaf) differentiated:
# backward checks the next chain against it.
chain_template: ContextVar[ChainTemplate | None] = ContextVar(
    "symgrad_chain_template", default=None
)


def recording_state(on: bool) -> Tape | bool:
    """The value of ``recording`` that turns recording on or off: recording that
    is already on keeps its tape, recording switched on starts a new one."""
    if not on:
        return False
    current = recording.get()
    if current:
        return current
    tape = Tape(template.get())
    last_tape.set(tape)
    return tape


# Anomaly detection (see symgrad.anomaly): a plain module flag, process-wide like a
# debugger switch, because recording reads it on every op and a ContextVar read costs
# more than an attribute read.
anomaly: bool = False
