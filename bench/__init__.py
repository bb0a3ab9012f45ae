"""symgrad's benchmark harness: ``python -m bench`` (see bench/README.md).

Each (library, workload) cell runs in its own fresh subprocess
(:mod:`bench.cell`); :mod:`bench.__main__` collects the results into one
markdown table with ratios against PyTorch eager from the same run.
"""
