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


# A fused training step (see symgrad.training_step): the capture a Trainer's update
# ops go to instead of running, and the step a backward computed ahead for the
# Trainer (weights and states updated into buffers of its own, committed by
# Trainer.step if its updates are those foreseen).
update_capture: ContextVar = ContextVar("symgrad_update_capture", default=None)
staged_step: ContextVar = ContextVar("symgrad_staged_step", default=None)
# The template and variables of this thread's latest backward, which a Trainer's
# step learns the fused step from.
last_backward: ContextVar = ContextVar("symgrad_last_backward", default=None)
# Counts in-place writes to arrays: a step computed ahead is committed only if no
# array was written in place since (a gradient clipped, a weight set).
in_place_writes: int = 0
