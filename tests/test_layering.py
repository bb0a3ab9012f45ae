"""The layers of DESIGN.md: ``compiler/`` is framework-free and imports nothing
from ``symgrad/``, neither in its source nor at run time."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPILER = ROOT / "compiler"


def _resolve(package: str, level: int, module: str | None) -> str:
    """The absolute name of ``from <level dots><module> import ...`` in ``package``."""
    if not level:
        return module or ""
    parts = package.split(".")
    base = parts[: len(parts) - level + 1]
    return ".".join(base + ([module] if module else []))


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    """Absolute names of the modules a file imports (relative imports resolved),
    anywhere in the file: top level, functions, TYPE_CHECKING blocks."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    if path.name == "__init__.py":
        package = ".".join(path.relative_to(ROOT).parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(package, node.level, node.module)
            found.append((node.lineno, module))
            found.extend((node.lineno, f"{module}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.Call) and getattr(
            node.func, "attr", getattr(node.func, "id", None)
        ) in ("import_module", "__import__"):
            if node.args and isinstance(node.args[0], ast.Constant):
                found.append((node.lineno, str(node.args[0].value)))
    return found


def _is_frontend(module: str) -> bool:
    return module == "symgrad" or module.startswith("symgrad.")


def test_compiler_sources_import_nothing_from_symgrad():
    files = sorted(COMPILER.rglob("*.py"))
    assert len(files) >= 10  # the walk found the package
    offending = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in files
        for line, module in _imported_modules(path)
        if _is_frontend(module)
    ]
    assert not offending, "compiler/ imports the frontend:\n" + "\n".join(offending)


def test_relative_imports_are_resolved():
    """The checker itself: compiler's relative imports resolve to compiler modules,
    and one that climbs out of compiler/ into symgrad/ would be caught."""
    names = {name for _, name in _imported_modules(COMPILER / "ops" / "common.py")}
    assert {"compiler.expr", "compiler.registry"} <= names
    assert _resolve("compiler.ops", 1, "shape") == "compiler.ops.shape"
    assert _resolve("compiler.ops", 2, None) == "compiler"
    assert _is_frontend(_resolve("compiler.ops", 3, "symgrad.autograd"))


def test_importing_compiler_does_not_import_symgrad():
    code = (
        "import sys, symgrad_compiler, symgrad_compiler.ops\n"
        "import symgrad_compiler.autodiff, symgrad_compiler.interpret\n"
        "loaded = sorted(m for m in sys.modules if m == 'symgrad' "
        "or m.startswith('symgrad.'))\n"
        "print(loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_users_compiler_module_does_not_shadow_symgrad(tmp_path):
    """A script next to its own compiler.py still imports symgrad: the framework-free
    compiler installs as ``symgrad_compiler``, a name no user module takes."""
    (tmp_path / "compiler.py").write_text("RAISE = 'the user module'\n")
    (tmp_path / "script.py").write_text(
        "import compiler\nimport symgrad as mx\n"
        "print(compiler.RAISE, mx.nd.ones((2,)).sum().asscalar())\n"
    )
    result = subprocess.run(
        [sys.executable, "script.py"], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "the user module 2.0"


def test_no_compiler_line_imports_a_symgrad_name_absolutely():
    """Not even in generated source or docs: compiler/ reaches its own modules
    relatively (the generated kernels' preamble fills in ``__package__``), so no
    line can be read as importing the frontend."""
    import re

    pattern = re.compile(r"^\s*(from|import)\s+symgrad")
    offending = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted(COMPILER.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.match(line)
    ]
    assert not offending, offending
