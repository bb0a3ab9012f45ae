"""Lowering of fused groups to numba kernels, and the kernel cache."""
