"""Find the code blocks of README.md and docs/, and run each one as a user would.

A block runs as written. What a CPU-only test machine lacks is put in place around it:

* a GPU: a callback or ``Chase`` built without ``gpus`` and without ``simulation`` gets a simulated GPU
  (a :class:`~chase_integrations.simulation.Simulation` over a synthetic A40-like profile);
* an account with a carbon-intensity service: ``ElectricityMapsProvider``, ``UKCarbonIntensityProvider``
  and ``WattTimeProvider`` built without ``base_url`` talk to a local server
  (:mod:`tests.provider_server`) that answers like the real one, on the simulated clock, and the
  credentials they read from the environment are set;
* the user's own training code: names such as ``model`` or ``datamodule`` that a block uses without
  defining come from a setup named in a directive (tiny CPU models and data).

Directives are HTML comments on the line just before a block's opening fence, invisible on GitHub and
in the built docs::

    <!-- docs-test: setup=lightning -->       names the block uses: model, datamodule
    <!-- docs-test: setup=hf -->              model, train_dataset
    <!-- docs-test: setup=loop -->            model, loader, optimizer
    <!-- docs-test: continue -->              runs after the previous block of the same file, sharing
                                              its working folder and Python names
    <!-- docs-test: skip=REASON -->           not run (a cluster, root, the network); reported as skipped

Python blocks are executed with their file's line numbers, so a traceback points into the page.
Shell blocks (``bash``/``sh``/``console``) run line by line: ``chase ...`` and ``python ...`` as
subprocesses, ``export`` sets a variable, ``make T`` as ``make -n T`` (the target exists and would run),
``pip install`` checks that every extra it names exists in pyproject.toml (the test has no network).
``text`` blocks are output excerpts and ``json`` blocks must parse; any other language fails.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON_LANGS = {"python", "py", "pycon"}
SHELL_LANGS = {"bash", "sh", "shell", "console"}
OUTPUT_LANGS = {"text", "json", "yaml", "toml"}
_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")
_DIRECTIVE = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<body>.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown page."""

    path: str  # relative to the repository root
    line: int  # 1-based line of the first code line
    lang: str
    code: str
    directives: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"


def markdown_files() -> list[Path]:
    """README.md and every page under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _directives(text: str) -> dict[str, str]:
    out = {}
    for item in text.split(";"):
        key, _, value = item.strip().partition("=")
        if key:
            out[key.strip()] = value.strip()
    return out


def parse_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of ``path``, with the directive written just before each."""
    lines = path.read_text(encoding="utf-8").splitlines()
    rel = str(path.relative_to(ROOT))
    blocks, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = len(m["indent"]), m["fence"], m["lang"].lower()
        directives: dict[str, str] = {}
        j = i - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        if j >= 0 and (d := _DIRECTIVE.match(lines[j])):
            directives = _directives(d["body"])
        body, k = [], i + 1
        while k < len(lines) and not lines[k].strip().startswith(fence[0] * len(fence)):
            body.append(lines[k][indent:] if lines[k][:indent].strip() == "" else lines[k].lstrip())
            k += 1
        blocks.append(Block(rel, i + 2, lang, "\n".join(body) + "\n", directives))
        i = k + 1
    return blocks


def all_blocks() -> list[Block]:
    return [b for p in markdown_files() for b in parse_blocks(p)]


def chain(block: Block, blocks: list[Block]) -> list[Block]:
    """``block`` preceded by the blocks it continues (``<!-- docs-test: continue -->``)."""
    same_file = [b for b in blocks if b.path == block.path]
    out = [block]
    while "continue" in out[0].directives:
        earlier = [b for b in same_file if b.line < out[0].line and b.lang not in OUTPUT_LANGS]
        if not earlier:
            raise AssertionError(f"{out[0].id}: `continue` but no earlier block in {block.path}")
        out.insert(0, earlier[-1])
    return out


# --- running ----------------------------------------------------------------------------------------


def run_python(block: Block, namespace: dict[str, Any]) -> None:
    """Execute ``block`` in ``namespace``; tracebacks carry the page's path and line numbers."""
    code = compile("\n" * (block.line - 1) + block.code, block.path, "exec")
    exec(code, namespace)


def shell_commands(code: str) -> list[str]:
    """Logical command lines: continuations joined, comments and prompts dropped."""
    out, pending = [], ""
    for raw in code.splitlines():
        line = raw.rstrip()
        if line.startswith("$ "):
            line = line[2:]
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append((pending + line).strip())
        pending = ""
    if pending:
        out.append(pending.strip())
    return out


def _extras() -> set[str]:
    """The extras of pyproject.toml's ``[project.optional-dependencies]`` (no tomllib on Python 3.10)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    return set(re.findall(r"^([A-Za-z][\w-]*)\s*=", section, flags=re.M))


def check_pip_install(args: list[str]) -> None:
    """``pip install`` of this package: every extra named must exist (the test does not download)."""
    known = _extras()
    targets = [a for a in args if not a.startswith("-")]
    assert targets, f"`pip install {' '.join(args)}` installs nothing"
    for target in targets:
        m = re.fullmatch(r"(chase-integrations|\.)(?:\[(?P<extras>[\w,-]+)\])?", target)
        assert m, f"`pip install {target}`: not this package (chase-integrations, or . in a clone)"
        missing = set((m["extras"] or "").split(",")) - {""} - known
        assert not missing, f"`pip install {target}`: no extra {sorted(missing)} in pyproject.toml ({sorted(known)})"


def run_shell(block: Block, cwd: Path, env: dict[str, str], timeout_s: float = 240) -> None:
    """Run each command line of a shell block (see the module docstring)."""
    bindir = Path(sys.executable).parent
    for command in shell_commands(block.code):
        words = shlex.split(command, comments=True)
        where = f"{block.id}: `{command}`"
        if not words:
            continue
        head = words[0]
        if head == "export":
            for assignment in words[1:]:
                key, _, value = assignment.partition("=")
                env[key] = value
            continue
        if head == "pip" or words[:3] == ["python", "-m", "pip"]:
            rest = words[1:] if head == "pip" else words[3:]
            assert rest and rest[0] == "install", f"{where}: only `pip install` is understood"
            check_pip_install(rest[1:])
            continue
        if head == "make":
            argv, run_cwd = ["make", "-n", *words[1:]], ROOT
        elif head == "chase":
            argv, run_cwd = [str(bindir / "chase"), *words[1:]], cwd
        elif head in ("python", "python3"):
            argv, run_cwd = [sys.executable, *words[1:]], cwd
        else:
            raise AssertionError(
                f"{where}: the docs test does not know how to run `{head}`. Write the block so that it runs "
                "(chase, python, export, make, pip install), or mark it `<!-- docs-test: skip=why -->`."
            )
        proc = subprocess.run(argv, cwd=run_cwd, env=env, capture_output=True, text=True, timeout=timeout_s)
        assert proc.returncode == 0, (
            f"{where} exited {proc.returncode}\n--- stdout ---\n{proc.stdout[-4000:]}\n"
            f"--- stderr ---\n{proc.stderr[-4000:]}"
        )


def check_output_block(block: Block) -> None:
    if block.lang == "json":
        try:
            json.loads(block.code)
        except json.JSONDecodeError as e:
            raise AssertionError(f"{block.id}: a json block that does not parse: {e}") from e


def subprocess_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("MPLBACKEND", "Agg")
    return env
