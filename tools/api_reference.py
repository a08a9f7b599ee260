#!/usr/bin/env python3
"""Writes docs/API.md: every public header of include/gradscope, what it is for (the first
paragraph of its opening comment) and the public names it declares at namespace scope (types,
functions, concepts, constants; nothing inside a `detail` namespace), so that any public name can
be found with a text search and followed to its header, where its comment says the rest.

    tools/api_reference.py            # rewrite docs/API.md
    tools/api_reference.py --check    # exit 1 if docs/API.md is not what this would write

The headers are clang-formatted: namespace-scope declarations start in column 0, so a line-based
reading finds them without a C++ parser. Members are not listed; the header has them.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
INCLUDE = ROOT / "include"
OUTPUT = ROOT / "docs" / "API.md"

NAMESPACE_OPEN = re.compile(r"^namespace ([\w:]+) \{")
NAMESPACE_CLOSE = re.compile(r"^\}\s*// namespace")
DECLARATIONS = [
    re.compile(r"^(?:template <.*> )?(?:struct|class) (\w+)(?: final)?\b(?!;)[^;]*$"),
    re.compile(r"^enum(?: class)? (\w+)"),
    re.compile(r"^using (\w+) ="),
    re.compile(r"^concept (\w+) ="),
    re.compile(r"^inline constexpr [\w:<>, ]+? (\w+)(?:\{| =|\[)"),
    re.compile(r"^inline const [\w:<>, ]+? (\w+)(?:\(| =|\{)"),
    # A function: a return type, the name, "(": not a statement, not an operator.
    re.compile(r"^(?:\[\[nodiscard\]\] )?(?:(?:inline|constexpr|static) )*"
               r"(?!return\b|if\b|for\b|while\b|switch\b)[A-Za-z_][\w:<>,*& ]*?[ *&](\w+)\("),
]


def opening_comment(lines):
    """The first paragraph of the header's opening // comment, as one line."""
    paragraph = []
    for line in lines:
        if not line.startswith("//"):
            break
        text = line[2:].strip()
        if not text:
            if paragraph:
                break
            continue
        paragraph.append(text)
    return " ".join(paragraph)


def public_names(lines):
    """(qualified name) for each public namespace-scope declaration, in order, without repeats."""
    stack, names, seen = [], [], set()
    pending_template = False
    for line in lines:
        opened = NAMESPACE_OPEN.match(line)
        if opened:
            stack.append(opened.group(1))
            continue
        if NAMESPACE_CLOSE.match(line):
            if stack:
                stack.pop()
            continue
        if line.startswith("template <") and line.rstrip().endswith(">"):
            pending_template = True
            continue
        parts = "::".join(stack).split("::")
        if not stack or any(p == "detail" or p.endswith("_detail") for p in parts):
            pending_template = False
            continue
        for pattern in DECLARATIONS:
            match = pattern.match(line)
            if match and "operator" not in line.split("(")[0]:
                prefix = "::".join(p for p in parts if p != "gradscope")
                name = (prefix + "::" if prefix else "") + match.group(1)
                if name not in seen:
                    seen.add(name)
                    names.append(name)
                break
        pending_template = False
    return names


def reference():
    out = [
        "# API reference",
        "",
        "Every public header of `include/gradscope`, what it is for, and the public names it",
        "declares at namespace scope. Search this page for a name to find its header; the",
        "header's comments say how to use it (members are listed there, not here). Written by",
        "`tools/api_reference.py`; ctest checks that it is current.",
        "",
    ]
    headers = sorted(p for p in (INCLUDE / "gradscope").rglob("*.hpp"))
    groups = {}
    for header in headers:
        relative = header.relative_to(INCLUDE / "gradscope")
        groups.setdefault(relative.parent.as_posix(), []).append(header)
    for group in sorted(groups):
        title = "umbrella headers" if group == "." else f"{group}/"
        out += [f"## {title}", ""]
        for header in groups[group]:
            lines = header.read_text(encoding="utf-8").splitlines()
            include = header.relative_to(INCLUDE).as_posix()
            out.append(f"### `<{include}>`")
            out.append("")
            summary = opening_comment(lines)
            if summary:
                out += [summary, ""]
            names = public_names(lines)
            if names:
                out += [", ".join(f"`{n}`" for n in names), ""]
    return "\n".join(out)


def main(argv):
    text = reference()
    if "--check" in argv:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            sys.exit(f"{OUTPUT} is not current: run tools/api_reference.py and commit the result")
        return
    OUTPUT.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
