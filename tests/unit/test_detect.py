"""Runtime, contract and entry detection on small project trees built in tmp_path."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import pytest

from runtimes.detect import Detection, detect_runtime
from shared.errors import InvalidUpload

SERVER = "import os\nprint(os.environ['PORT'])\n"
Contract = Literal["server", "handler"]
HANDLER = "def handle(request):\n    return {'ok': True}\n"


def project(root: Path, files: Mapping[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def detect(
    tmp_path: Path, files: Mapping[str, str | bytes], forced: str | None = None
) -> Detection:
    return detect_runtime(project(tmp_path, files), forced)


def rejected(
    tmp_path: Path, files: Mapping[str, str | bytes], code: str, forced: str | None = None
) -> str:
    with pytest.raises(InvalidUpload) as info:
        detect(tmp_path, files, forced)
    assert info.value.code == code, info.value.message
    return info.value.message


# -- python ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "entry"),
    [
        ({"main.py": SERVER}, "main.py"),
        ({"app.py": SERVER}, "app.py"),
        ({"server.py": SERVER}, "server.py"),
        ({"server.py": SERVER, "app.py": SERVER, "main.py": SERVER}, "main.py"),
        ({"app.py": SERVER, "server.py": SERVER}, "app.py"),
        ({"handler.py": HANDLER, "main.py": SERVER}, "main.py"),  # a server name wins
        ({"service.py": SERVER, "requirements.txt": "fastapi\n"}, "service.py"),
        ({"handler.py": "print('no handle here')\n"}, "handler.py"),  # the only .py file
        ({"main.py": SERVER, "lib/other.py": "", "lib/more.py": ""}, "main.py"),
    ],
)
def test_python_server_entry(tmp_path: Path, files: Mapping[str, str | bytes], entry: str) -> None:
    detection = detect(tmp_path, files)
    assert (detection.runtime, detection.contract, detection.entry) == ("python", "server", entry)


@pytest.mark.parametrize(
    "source",
    [
        HANDLER,
        "import json\n\n\ndef handle(request, *args):\n    return json.dumps({})\n",
        "PATTERN = '\\d+'  # invalid escape: a SyntaxWarning, not an error\n" + HANDLER,
    ],
)
def test_python_handler(tmp_path: Path, source: str) -> None:
    files = {"handler.py": source, "helpers.py": "", "requirements.txt": "requests==2.32\n"}
    assert detect(tmp_path, files) == Detection("python", "handler", "handler.py", True)


@pytest.mark.parametrize(
    "source",
    [
        "async def handle(request):\n    return 1\n",
        "class H:\n    def handle(self, request):\n        return 1\n",
        "if True:\n    def handle(request):\n        return 1\n",
        "handle = lambda request: 1\n",
        "# def handle(request):\n",
    ],
)
def test_handle_must_be_a_top_level_def(tmp_path: Path, source: str) -> None:
    rejected(tmp_path, {"handler.py": source, "helpers.py": ""}, "no_entry_point")


def test_python_without_entry_lists_what_veil_looks_for(tmp_path: Path) -> None:
    message = rejected(tmp_path, {"a.py": "", "b.py": ""}, "no_entry_point")
    for name in ("main.py", "app.py", "server.py", "handler.py", "handle(request)"):
        assert name in message
    rejected(tmp_path / "x", {"requirements.txt": "flask\n", "lib/app.py": ""}, "no_entry_point")


def test_handler_with_a_syntax_error(tmp_path: Path) -> None:
    files = {"handler.py": "def handle(request:\n    pass\n", "util.py": ""}
    assert "line 1" in rejected(tmp_path, files, "no_entry_point")


def test_handler_that_is_not_utf8(tmp_path: Path) -> None:
    files = {"handler.py": b"def handle(r):\n    return '\xff'\n", "util.py": b""}
    rejected(tmp_path, files, "not_utf8_source")


@pytest.mark.parametrize(
    ("requirements", "expected"),
    [
        ("fastapi==0.115\nuvicorn\n", True),
        ("", False),
        ("# nothing yet\n\n   \n", False),
        (None, False),
    ],
)
def test_python_has_dependencies(tmp_path: Path, requirements: str | None, expected: bool) -> None:
    files: dict[str, str | bytes] = {"main.py": SERVER}
    if requirements is not None:
        files["requirements.txt"] = requirements
    assert detect(tmp_path, files).has_dependencies is expected


# -- node and go ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "contract", "entry", "deps"),
    [
        (
            {
                "package.json": '{"main": "src/server.js", "dependencies": {"express": "^4"}}',
                "src/server.js": "",
            },
            "server",
            "src/server.js",
            True,
        ),
        (
            {"package.json": '{"main": "./lib"}', "lib/index.js": ""},
            "server",
            "lib/index.js",
            False,
        ),
        ({"package.json": '{"main": "start"}', "start.js": ""}, "server", "start.js", False),
        (
            {"package.json": '{"dependencies": {}}', "server.js": "", "app.js": ""},
            "server",
            "server.js",
            False,
        ),
        ({"index.js": "", "app.js": ""}, "server", "index.js", False),
        (
            {"handler.js": "module.exports = () => 1\n", "util.js": ""},
            "handler",
            "handler.js",
            False,
        ),
        ({"api.js": ""}, "server", "api.js", False),
    ],
)
def test_node(
    tmp_path: Path, files: Mapping[str, str | bytes], contract: Contract, entry: str, deps: bool
) -> None:
    assert detect(tmp_path, files) == Detection("node", contract, entry, deps)


def test_node_errors(tmp_path: Path) -> None:
    rejected(tmp_path / "a", {"package.json": '{"main": "missing.js"}'}, "no_entry_point")
    rejected(tmp_path / "b", {"package.json": "{not json"}, "no_entry_point")
    rejected(tmp_path / "c", {"package.json": "[]", "index.js": ""}, "no_entry_point")
    rejected(tmp_path / "d", {"package.json": '{"main": "../outside.js"}'}, "unsafe_path")
    rejected(tmp_path / "e", {"a.js": "", "b.js": ""}, "no_entry_point")


GO_MAIN = "// Package main serves.\npackage main\n\nfunc main() {}\n"
GO_MOD = "module example.com/app\n\ngo 1.22\n"


@pytest.mark.parametrize(
    ("files", "contract", "entry", "deps"),
    [
        ({"go.mod": GO_MOD, "main.go": GO_MAIN}, "server", "main.go", False),
        (
            {"go.mod": GO_MOD + "require github.com/x/y v1.0.0\n", "server.go": GO_MAIN},
            "server",
            "server.go",
            True,
        ),
        (
            {
                "go.mod": GO_MOD,
                "cmd/api/routes.go": GO_MAIN,
                "cmd/api/main.go": GO_MAIN,
                "internal/db.go": "package db\n",
                "vendor/x/main.go": GO_MAIN,
            },
            "server",
            "cmd/api/main.go",
            False,
        ),
        (
            {
                "go.mod": GO_MOD,
                "handler.go": "package handler\n\nfunc Handle(w http.ResponseWriter, "
                "r *http.Request) {}\n",
                "handler_test.go": "package main\n",
            },
            "handler",
            "handler.go",
            False,
        ),
        ({"main.go": GO_MAIN}, "server", "main.go", False),
    ],
)
def test_go(
    tmp_path: Path, files: Mapping[str, str | bytes], contract: Contract, entry: str, deps: bool
) -> None:
    assert detect(tmp_path, files) == Detection("go", contract, entry, deps)


def test_go_errors(tmp_path: Path) -> None:
    two_mains = {"go.mod": GO_MOD, "cmd/a/main.go": GO_MAIN, "cmd/b/main.go": GO_MAIN}
    assert "cmd/a, cmd/b" in rejected(tmp_path / "a", two_mains, "no_entry_point")
    rejected(tmp_path / "b", {"go.mod": GO_MOD, "lib.go": "package lib\n"}, "no_entry_point")


# -- precedence and forcing -----------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "runtime"),
    [
        (
            {
                "go.mod": GO_MOD,
                "package.json": "{}",
                "requirements.txt": "x",
                "main.go": GO_MAIN,
                "index.js": "",
                "main.py": "",
            },
            "go",
        ),
        ({"package.json": "{}", "requirements.txt": "x", "index.js": "", "main.py": ""}, "node"),
        ({"requirements.txt": "", "index.js": "", "other.js": "", "main.py": ""}, "python"),
        ({"pyproject.toml": "[project]\n", "index.js": "", "main.py": ""}, "python"),
        ({"main.py": "", "util.py": "", "index.js": ""}, "python"),
        ({"main.go": GO_MAIN, "a.js": "", "b.js": "", "c.js": "", "index.js": ""}, "node"),
    ],
)
def test_precedence(tmp_path: Path, files: Mapping[str, str | bytes], runtime: str) -> None:
    assert detect(tmp_path, files).runtime == runtime


def test_tied_extensions_ask_the_user_to_choose(tmp_path: Path) -> None:
    message = rejected(tmp_path, {"main.py": "", "index.js": ""}, "unknown_runtime")
    assert "python and node" in message


def test_nothing_recognisable(tmp_path: Path) -> None:
    files = {"README.md": "hi", "src/main.py": "", ".hidden.py": ""}
    assert "requirements.txt" in rejected(tmp_path, files, "unknown_runtime")


def test_forced_runtime_wins(tmp_path: Path) -> None:
    files = {"go.mod": GO_MOD, "main.go": GO_MAIN, "main.py": SERVER}
    assert detect(tmp_path, files, forced="python").entry == "main.py"
    assert detect(tmp_path, files, forced=" Python ").runtime == "python"
    assert detect(tmp_path, files, forced="go").runtime == "go"
    rejected(tmp_path, files, "no_entry_point", forced="node")


@pytest.mark.parametrize("forced", ["ruby", "", "py", "python3", "go\n; rm -rf /"])
def test_unknown_forced_runtime(tmp_path: Path, forced: str) -> None:
    message = rejected(tmp_path, {"main.py": SERVER}, "unknown_runtime", forced=forced)
    assert "python, node or go" in message
    assert "\n" not in message


@pytest.mark.parametrize("name", ["my app.py", "-rf.py", "naïve.py", "$(id).py"])
def test_entry_names_are_validated(tmp_path: Path, name: str) -> None:
    rejected(tmp_path, {name: SERVER}, "unsafe_path")
