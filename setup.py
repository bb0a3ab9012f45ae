"""Package list: everything else is in pyproject.toml.

The framework-free compiler sits in ``compiler/`` at the top of the repository
but installs as ``symgrad_compiler``, so that a user's own ``compiler.py`` next
to their script cannot shadow it.
"""

from setuptools import find_packages, setup

COMPILER = [
    "symgrad_compiler" + name[len("compiler") :] for name in find_packages(include=["compiler*"])
]

setup(
    packages=find_packages(include=["symgrad*"]) + COMPILER,
    package_dir={"symgrad_compiler": "compiler"},
)
