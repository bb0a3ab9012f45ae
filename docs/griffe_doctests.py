"""A griffe extension for the API reference: doctest examples written outside an
"Examples" section render as code, not as Markdown.

symgrad's docstrings keep small doctests (checked by pytest) next to the text they
illustrate. Outside a numpydoc "Examples" section, Markdown would read their output
(``[[4, 3, 3]]``) as reference links. Here a doctest block in the description is
fenced as a ``pycon`` code block, and one that follows another section (such as
"Parameters") gets an "Examples" heading, which griffe renders as code.
"""

from __future__ import annotations

from typing import Any

import griffe


def _section_name(lines: list[str], index: int) -> str | None:
    """The numpydoc section that starts at ``lines[index]``, if one does."""
    if index + 1 >= len(lines):
        return None
    title, rule = lines[index].strip(), lines[index + 1].strip()
    if title and rule and set(rule) == {"-"} and len(rule) == len(title):
        return title
    return None


def fence_doctests(text: str) -> str:
    """``text`` with each doctest block outside an Examples section made code."""
    lines = text.splitlines()
    out: list[str] = []
    section: str | None = None
    index = 0
    while index < len(lines):
        name = _section_name(lines, index)
        if name is not None:
            section = name
            out += lines[index : index + 2]
            index += 2
            continue
        if lines[index].lstrip().startswith(">>>") and section != "Examples":
            block = []
            while index < len(lines) and lines[index].strip():
                block.append(lines[index])
                index += 1
            if section is None:
                out += ["```pycon", *block, "```"]
            else:
                out += ["Examples", "--------", *block]
                section = "Examples"
            continue
        out.append(lines[index])
        index += 1
    return "\n".join(out)


class FenceDoctests(griffe.Extension):
    """Apply :func:`fence_doctests` to every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(obj.docstring.value)
