"""Runtime detection: which language an extracted upload is, and how to start it.

Runs on the directory `shared.archive` produced (a wrapping folder is
already stripped and it holds no links). Only the project root is inspected,
except for Go, whose `package main` may live in a subdirectory (`cmd/<name>/`).

Precedence: forced > go.mod > package.json > requirements.txt/pyproject.toml >
the majority of .go/.js/.py files at the root (a tie is an error, not a guess).

`has_dependencies` means a dependency file with something in it: requirements.txt
with a requirement line (pyproject.toml alone is not installed), package.json with
"dependencies", go.mod with a `require` directive.
"""

from __future__ import annotations

import ast
import json
import os
import re
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NoReturn

from shared.errors import InvalidUpload

Runtime = Literal["python", "node", "go"]
RUNTIMES: tuple[Runtime, ...] = ("python", "node", "go")


@dataclass(frozen=True)
class Detection:
    runtime: Runtime
    contract: Literal["server", "handler"]  # HTTP server on $PORT, or a handler a shim wraps
    entry: str  # relative posix path of the entry file inside the project root
    has_dependencies: bool


_PY_SERVERS = ("main.py", "app.py", "server.py")
_NODE_SERVERS = ("index.js", "server.js", "app.js")
_SUFFIX_RUNTIME: dict[str, Runtime] = {".py": "python", ".js": "node", ".go": "go"}
# The entry becomes a process argument: a conservative charset, and no leading '-'.
_ENTRY = re.compile(r"[A-Za-z0-9._/-]+")
_GO_PACKAGE = re.compile(r"^\s*package\s+(\w+)", re.MULTILINE)
_GO_HANDLE = re.compile(r"^func\s+Handle\s*\(", re.MULTILINE)
_GO_REQUIRE = re.compile(r"^\s*require\b", re.MULTILINE)
_GO_SKIP_DIRS = frozenset({"vendor", "testdata", "node_modules"})


def detect_runtime(root: Path, forced: str | None = None) -> Detection:
    """Decide the runtime, contract and entry file of the project at `root`."""
    runtime = _forced(forced) if forced is not None else _guess(root)
    if runtime == "python":
        detection = _detect_python(root)
    elif runtime == "node":
        detection = _detect_node(root)
    else:
        detection = _detect_go(root)
    _check_entry(detection.entry)
    return detection


def _forced(forced: str) -> Runtime:
    for runtime in RUNTIMES:
        if forced.strip().lower() == runtime:
            return runtime
    shown = forced[:40].encode("unicode_escape").decode("ascii")
    _fail("unknown_runtime", f"Unknown runtime '{shown}'; choose python, node or go.")


def _guess(root: Path) -> Runtime:
    if _is_file(root / "go.mod"):
        return "go"
    if _is_file(root / "package.json"):
        return "node"
    if _is_file(root / "requirements.txt") or _is_file(root / "pyproject.toml"):
        return "python"
    counts = Counter(_SUFFIX_RUNTIME[p.suffix] for p in _root_files(root, *_SUFFIX_RUNTIME))
    ranked = counts.most_common()
    if not ranked:
        _fail(
            "unknown_runtime",
            "Veil could not tell which runtime this upload uses: there is no "
            "requirements.txt, package.json or go.mod, and no .py, .js or .go file at the "
            "project root.",
        )
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        tied = " and ".join(r for r in RUNTIMES if counts[r] == ranked[0][1])
        _fail(
            "unknown_runtime",
            f"Veil could not tell which runtime this upload uses: it has as many {tied} "
            "source files at the root. Choose the runtime explicitly.",
        )
    return ranked[0][0]


# -- python ---------------------------------------------------------------------------


def _detect_python(root: Path) -> Detection:
    deps = _has_requirements(root / "requirements.txt")
    for name in _PY_SERVERS:
        if _is_file(root / name):
            return Detection("python", "server", name, deps)
    if _is_file(root / "handler.py") and _defines_handle(root / "handler.py"):
        return Detection("python", "handler", "handler.py", deps)
    sources = _root_files(root, ".py")
    if len(sources) == 1:
        return Detection("python", "server", sources[0].name, deps)
    _fail(
        "no_entry_point",
        "No Python entry point found. At the project root Veil looks for main.py, app.py "
        "or server.py (a server listening on $PORT), for handler.py with a top-level "
        "`def handle(request)`, or for a single .py file.",
    )


def _defines_handle(path: Path) -> bool:
    try:
        # User code may trigger SyntaxWarnings (say, invalid escapes); they are not ours.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(path.read_bytes(), filename=path.name)
    except SyntaxError as exc:
        if exc.msg.startswith("(unicode error)"):
            _fail("not_utf8_source", f"The file '{path.name}' is not UTF-8 text.")
        where = f"line {exc.lineno}: {exc.msg}" if exc.lineno else exc.msg
        _fail("no_entry_point", f"The file '{path.name}' is not valid Python ({where}).")
    except (ValueError, RecursionError, MemoryError):
        _fail("no_entry_point", f"The file '{path.name}' could not be parsed as Python.")
    return any(isinstance(node, ast.FunctionDef) and node.name == "handle" for node in tree.body)


def _has_requirements(path: Path) -> bool:
    if not _is_file(path):
        return False
    lines = (line.strip() for line in path.read_text("utf-8", errors="replace").splitlines())
    return any(line and not line.startswith("#") for line in lines)


# -- node -----------------------------------------------------------------------------


def _detect_node(root: Path) -> Detection:
    package = _read_package_json(root / "package.json")
    deps = bool(package.get("dependencies"))
    main = package.get("main")
    if isinstance(main, str) and main.strip():
        return Detection("node", "server", _node_main(root, main), deps)
    for name in _NODE_SERVERS:
        if _is_file(root / name):
            return Detection("node", "server", name, deps)
    if _is_file(root / "handler.js"):
        return Detection("node", "handler", "handler.js", deps)
    sources = _root_files(root, ".js")
    if len(sources) == 1:
        return Detection("node", "server", sources[0].name, deps)
    _fail(
        "no_entry_point",
        'No Node.js entry point found. Veil looks for the "main" file of package.json, '
        "for index.js, server.js or app.js (a server listening on $PORT), or for handler.js.",
    )


def _read_package_json(path: Path) -> dict[str, object]:
    if not _is_file(path):
        return {}
    try:
        package = json.loads(path.read_bytes())
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError
        _fail("no_entry_point", "package.json is not valid UTF-8 JSON.")
    if not isinstance(package, dict):
        _fail("no_entry_point", "package.json must hold a JSON object.")
    return package


def _node_main(root: Path, main: str) -> str:
    """Resolve package.json "main" the way Node does: exact, then .js, then /index.js."""
    entry = main.strip().removeprefix("./").rstrip("/")
    _check_entry(entry)
    for candidate in (entry, f"{entry}.js", f"{entry}/index.js"):
        if _is_file(root / candidate):
            return candidate
    _fail("no_entry_point", f"package.json names '{entry}' as \"main\", but it is not a file.")


# -- go -------------------------------------------------------------------------------


def _detect_go(root: Path) -> Detection:
    go_mod = root / "go.mod"
    deps = _is_file(go_mod) and bool(_GO_REQUIRE.search(_read_text(go_mod)))
    mains = _go_main_files(root)
    if "main.go" in mains:
        return Detection("go", "server", "main.go", deps)
    dirs = sorted({m.rpartition("/")[0] for m in mains})
    if len(dirs) == 1:
        in_dir = [m for m in mains if m.rpartition("/")[0] == dirs[0]]
        preferred = f"{dirs[0]}/main.go" if dirs[0] else "main.go"
        return Detection("go", "server", preferred if preferred in in_dir else in_dir[0], deps)
    if len(dirs) > 1:
        listed = ", ".join(d or "." for d in dirs[:5])
        _fail(
            "no_entry_point",
            f"Several directories declare `package main` ({listed}); Veil builds exactly one.",
        )
    for path in _root_files(root, ".go"):
        if _GO_HANDLE.search(_read_text(path)):
            return Detection("go", "handler", path.name, deps)
    _fail(
        "no_entry_point",
        "No Go entry point found. Veil looks for `package main` (main.go at the root or "
        "in one subdirectory such as cmd/<name>/), or for a root .go file defining "
        "`func Handle(w http.ResponseWriter, r *http.Request)`.",
    )


def _go_main_files(root: Path) -> list[str]:
    """Relative paths of non-test .go files declaring `package main`, sorted."""
    found: list[str] = []
    for current, dirnames, filenames in os.walk(root):
        # Dependencies, fixtures and hidden/underscore dirs are ignored by `go build`.
        dirnames[:] = sorted(
            d for d in dirnames if d not in _GO_SKIP_DIRS and not d.startswith((".", "_"))
        )
        rel = Path(current).relative_to(root).as_posix()
        for name in sorted(filenames):
            if not name.endswith(".go") or name.endswith("_test.go"):
                continue
            match = _GO_PACKAGE.search(_read_text(Path(current, name)))
            if match and match.group(1) == "main":
                found.append(name if rel == "." else f"{rel}/{name}")
    return found


# -- helpers --------------------------------------------------------------------------


def _check_entry(entry: str) -> None:
    parts = entry.split("/")
    if (
        not _ENTRY.fullmatch(entry)
        or entry.startswith("-")
        or any(p in ("", ".", "..") for p in parts)
    ):
        shown = entry[:100].encode("unicode_escape").decode("ascii")
        _fail(
            "unsafe_path",
            f"The entry point '{shown}' cannot be used: entry paths may only contain "
            "letters, digits, '.', '_', '-' and '/', stay inside the project and not start "
            "with '-'. Rename the file.",
        )


def _root_files(root: Path, *suffixes: str) -> list[Path]:
    return sorted(
        p
        for p in root.iterdir()
        if p.suffix in suffixes and not p.name.startswith(".") and _is_file(p)
    )


def _is_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def _read_text(path: Path) -> str:
    return path.read_text("utf-8", errors="replace")


def _fail(code: str, message: str) -> NoReturn:
    raise InvalidUpload(message, code=code)
