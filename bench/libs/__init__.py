"""The benchmark's columns: one library module per column, listed in one place.

To add a column (for example "symgrad replay"), write a module here with the
setup functions ``w1(inputs) .. w4(inputs)`` (each returns ``step``; ``step()``
runs one synchronised forward+backward and returns ``(value, grads)``) and
append a :class:`Column` to :data:`COLUMNS`. Columns that share a module can
differ by environment variables (see the symgrad interpreter column).
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    """One column of the table."""

    key: str  # id for --libs (the group name selects all its columns too)
    title: str  # table header
    module: str  # module in bench.libs
    group: str  # library family, e.g. "symgrad"
    env: dict = field(default_factory=dict)  # extra environment for its subprocess
    # The interpreter of its subprocess, relative to the repository root (None: the
    # one running the harness). MXNet 1.9.1 needs its own virtualenv (numpy 1.23.5).
    python: str | None = None
    # The workloads it has (empty: ask the module); other rows show n/a, no process.
    workloads: tuple = ()
    # Workloads whose setup lives in another module than ``module`` (W7, W8, the zoo).
    modules: dict = field(default_factory=dict)

    def runs(self, workload):
        """Whether this column has a setup for ``workload`` as far as is declared."""
        return not self.workloads or workload in self.workloads

    def module_for(self, workload):
        """The module in bench.libs holding this column's setup for ``workload``."""
        return self.modules.get(workload, self.module)


GLUON_WORKLOADS = ("W6", "W6_step", "W7", "W8")
MXNET_PYTHON = "build/mxnet-venv/bin/python"
# W7 and W8 (issue 16) and the model zoo (issue 17): one module per workload, each
# running the same Gluon script on symgrad and MXNet (and the PyTorch port on torch).
GLUON_MODULES = {"W7": "gluon_w7", "W8": "gluon_w8", "ZOO": "zoo"}
TORCH = {"BENCH_MX": "torch"}
TORCH_MODULES = {k: v for k, v in GLUON_MODULES.items() if k != "ZOO"}

COLUMNS = [
    Column("symgrad", "symgrad compiled", "symgrad_lib", "symgrad"),
    Column(
        "symgrad-interp",
        "symgrad interpreter",
        "symgrad_lib",
        "symgrad",
        {"SYMGRAD_BACKEND": "interpreter"},
    ),
    Column("symgrad-replay", "symgrad replay", "symgrad_replay", "symgrad"),
    Column("numpy", "numpy by hand", "numpy_hand", "numpy"),
    # (no model zoo on PyTorch: its rows compare with MXNet 1.9.1)
    Column("torch", "PyTorch eager", "torch_eager", "torch", TORCH, modules=TORCH_MODULES),
    Column(
        "torch-compile",
        "torch.compile",
        "torch_compile",
        "torch",
        {**TORCH, "BENCH_TORCH_COMPILE": "1"},
        modules={"W7": "gluon_w7"},
    ),
    Column("jax", "jax.jit", "jax_jit", "jax"),
    Column("limit", "limit (numba)", "limit_numba", "limit"),
    # W6: one Gluon script (gluon_w6.py) on symgrad, imperative and hybridized, and on
    # real MXNet 1.9.1 in the interop virtualenv (tests/mxnet_interop.py makes it).
    Column(
        "symgrad-gluon",
        "symgrad Gluon",
        "gluon_w6",
        "symgrad",
        {"BENCH_MX": "symgrad"},
        workloads=GLUON_WORKLOADS,
        modules=GLUON_MODULES,
    ),
    Column(
        "symgrad-hybrid",
        "symgrad Gluon hybridized",
        "gluon_w6",
        "symgrad",
        {"BENCH_MX": "symgrad", "BENCH_HYBRIDIZE": "1"},
        workloads=GLUON_WORKLOADS + ("ZOO",),
        modules=GLUON_MODULES,
    ),
    Column(
        "mxnet",
        "MXNet 1.9.1 Gluon hybridized",
        "gluon_w6",
        "mxnet",
        {"BENCH_MX": "mxnet", "BENCH_HYBRIDIZE": "1"},
        python=MXNET_PYTHON,
        workloads=GLUON_WORKLOADS + ("ZOO",),
        modules=GLUON_MODULES,
    ),
]

BASELINE = "torch"  # ratios are BASELINE time / column time

COLUMN_BY_KEY = {c.key: c for c in COLUMNS}


def select(spec):
    """Columns named by a comma-separated list of keys or groups (None: all)."""
    if not spec:
        return list(COLUMNS)
    wanted = {s.strip() for s in spec.split(",") if s.strip()}
    unknown = wanted - {c.key for c in COLUMNS} - {c.group for c in COLUMNS}
    if unknown:
        raise SystemExit(
            f"unknown library {sorted(unknown)}; known: " + ", ".join(c.key for c in COLUMNS)
        )
    return [c for c in COLUMNS if c.key in wanted or c.group in wanted]
