"""Every link and every file path the repository's text names resolves inside a fresh clone.

A fresh clone holds what git tracks and nothing else: not `.venv`, not `.lab`, not the design notes someone kept
beside the checkout. So a target counts only when git tracks it, or tracks something under it for a folder (a new
file that git does not ignore counts too: it is about to be committed).

- Markdown links `[text](path)` and `[text](path#anchor)` in every tracked *.md: the path, taken from the file's own
  folder, stays inside the repository and is tracked; the anchor is a heading of the target (GitHub's slugs).
  Links with a scheme (https:, mailto:) are the web's, not checked here.
- File paths in backticks in the Markdown (`infra/config.py`), and file paths under the top folders in the comments
  and docstrings of the code and configuration: they name a tracked file. A path with a placeholder or a glob
  (`Pulumi.<stack>.yaml`, `tests/unit/agent/test_*.py`) names no one file and is passed over. A path that does not
  start with a top folder (`defaults/main.yml`, said of a role) may be relative to the file that names it, or to a
  folder: it needs only to end a tracked path.
- Nothing points at notes kept outside the repository (`../shared`, a `DESIGN.md`).
"""

import ast
import io
import re
import subprocess
import tokenize
from collections import Counter
from functools import cache
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[3]

# The repository's own top-level folders: a path that starts with one of them is the repository's.
TOP_FOLDERS = ("infra", "lambdas", "ansible", "lab", "spot_redis", "tests", "docs", "inventories", "tools")
FILE_EXTENSIONS = ("py", "sh", "md", "yml", "yaml", "json", "j2", "txt", "toml", "tmpl", "cfg", "test.yml")
# Text files whose comments and strings may name a file of the repository.
CODE_SUFFIXES = {".py", ".sh", ".yml", ".yaml", ".j2", ".cfg", ".toml", ".tmpl"}
CODE_NAMES = {"Makefile"}

FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
PLACEHOLDER = re.compile(r"[<>*?{}$\[\]|]")
# A repository path in code or configuration: one of the top folders, then a file name with a known extension.
_TOP = "|".join(TOP_FOLDERS)
_EXTENSIONS = "|".join(FILE_EXTENSIONS)
CODE_PATH = re.compile(rf"(?<![\w./-])((?:{_TOP})/[\w.+/-]*?\.(?:{_EXTENSIONS}))(?![\w/-])")
# A path that leaves the repository for its parent's folders (design notes kept beside the checkout).
OUTSIDE = re.compile(r"\.\./shared\b|/work/shared\b|DESIGN\.md")
# Files that may name such a place: this one, and the test that compares tests/unit/events with the upstream samples
# where a machine has them (it skips where it does not; the committed copies are what every other test reads).
MAY_POINT_OUTSIDE = {"tests/unit/docs/test_links.py"}


@cache
def tracked_files() -> frozenset[str]:
    """What a clone will hold: the files git tracks, and the new ones it does not ignore (about to be committed)."""
    command = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    listing = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    return frozenset(name for name in listing.stdout.split("\0") if name and (ROOT / name).is_file())


@cache
def tracked_folders() -> frozenset[str]:
    return frozenset(str(parent) for name in tracked_files() for parent in PurePosixPath(name).parents)


def is_tracked(relative: str) -> bool:
    return relative in tracked_files() or relative in tracked_folders()


def markdown_files() -> list[str]:
    return sorted(name for name in tracked_files() if name.endswith(".md"))


def code_files() -> list[str]:
    return sorted(
        name
        for name in tracked_files()
        if PurePosixPath(name).suffix in CODE_SUFFIXES or PurePosixPath(name).name in CODE_NAMES
    )


def prose_lines(text: str) -> list[tuple[int, str]]:
    """The lines outside fenced code blocks, numbered from 1."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: markup dropped, lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache
def anchors(relative: str) -> frozenset[str]:
    seen: Counter[str] = Counter()
    found = set()
    for _, line in prose_lines((ROOT / relative).read_text()):
        heading = HEADING.match(line)
        if heading:
            slug = github_slug(heading.group(2))
            found.add(slug if not seen[slug] else f"{slug}-{seen[slug]}")
            seen[slug] += 1
    return frozenset(found)


def normalized(path: PurePosixPath) -> str | None:
    """A repository-relative path with . and .. folded; None when it climbs out of the repository."""
    parts: list[str] = []
    for part in path.parts:
        if part == "..":
            if not parts:
                return None
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


def link_problem(source: str, target: str) -> str | None:
    """What is wrong with a link in the Markdown file `source`, or None."""
    if SCHEME.match(target):
        return None
    path, _, anchor = target.partition("#")
    resolved = normalized(PurePosixPath(source).parent / path) if path else source
    if resolved is None:
        return f"leaves the repository: {target}"
    if not is_tracked(resolved):
        return f"not in a clone of the repository: {target} ({resolved})"
    if anchor and resolved.endswith(".md") and anchor not in anchors(resolved):
        return f"no heading #{anchor} in {resolved}"
    return None


def links(source: str) -> list[tuple[int, str]]:
    return [
        (number, match.group(1))
        for number, line in prose_lines((ROOT / source).read_text())
        for match in LINK.finditer(CODE_SPAN.sub("", line))
    ]


def backtick_paths(source: str) -> list[tuple[int, str]]:
    """Code spans that are a file path of the repository (a top folder, or a known extension), without placeholders."""
    found = []
    for number, line in prose_lines((ROOT / source).read_text()):
        for span in CODE_SPAN.finditer(line):
            text = span.group(2).strip()
            if " " in text or PLACEHOLDER.search(text) or text.startswith(("/", "~", ".", "http")) or "/" not in text:
                continue
            if text.split("/")[0] in TOP_FOLDERS or text.endswith(tuple(f".{ext}" for ext in FILE_EXTENSIONS)):
                found.append((number, text))
    return found


def path_problem(source: str, path: str) -> str | None:
    """A path named in `source` is tracked: from the repository's root, from the source's own folder or, when it does
    not start with a top folder, as the end of some tracked path."""
    path = path.rstrip("/")
    candidates = (normalized(PurePosixPath(path)), normalized(PurePosixPath(source).parent / path))
    if any(candidate is not None and is_tracked(candidate) for candidate in candidates):
        return None
    if path.split("/")[0] not in TOP_FOLDERS and any(name.endswith("/" + path) for name in tracked_files()):
        return None
    return f"no such file in the repository: {path}"


def python_commentary(text: str) -> list[tuple[int, str]]:
    """The comments and docstrings of a Python file, by line: what it says, not the strings it computes with."""
    comments = [
        (token.start[0], token.string)
        for token in tokenize.generate_tokens(io.StringIO(text).readline)
        if token.type == tokenize.COMMENT
    ]
    documented = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    docstrings = [
        (node.body[0].lineno + offset, line)
        for node in ast.walk(ast.parse(text))
        if isinstance(node, documented) and ast.get_docstring(node, clean=False) is not None
        for offset, line in enumerate(ast.get_docstring(node, clean=False).splitlines())
    ]
    return comments + docstrings


def commentary(source: str) -> list[tuple[int, str]]:
    """The comments (and, in Python, the docstrings) of a code or configuration file, by line."""
    text = (ROOT / source).read_text()
    if source.endswith(".py"):
        return python_commentary(text)
    return [(number, line[line.index("#") :]) for number, line in enumerate(text.splitlines(), start=1) if "#" in line]


def code_paths(source: str) -> list[tuple[int, str]]:
    return [
        (number, match.group(1))
        for number, line in commentary(source)
        for match in CODE_PATH.finditer(line)
        if not PLACEHOLDER.search(line[max(0, match.start() - 1) : match.end() + 1])
    ]


def problems(named: list[tuple[int, str]], source: str, check) -> list[str]:
    return [f"{source}:{number}: {problem}" for number, item in named if (problem := check(source, item))]


def test_there_is_something_to_check() -> None:
    assert "README.md" in markdown_files()
    assert sum(len(links(name)) for name in markdown_files()) >= 10


@pytest.mark.parametrize("source", markdown_files())
def test_markdown_links_resolve_in_a_clone(source: str) -> None:
    found = problems(links(source), source, link_problem)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("source", markdown_files())
def test_markdown_backtick_paths_exist(source: str) -> None:
    found = problems(backtick_paths(source), source, path_problem)
    assert not found, "\n".join(found)


def test_code_and_configuration_name_existing_files() -> None:
    found = [problem for source in code_files() for problem in problems(code_paths(source), source, path_problem)]
    assert not found, "\n".join(found)


def test_nothing_points_outside_the_repository() -> None:
    found = [
        f"{name}:{number}: {line.strip()}"
        for name in markdown_files() + code_files()
        if name not in MAY_POINT_OUTSIDE
        for number, line in enumerate((ROOT / name).read_text().splitlines(), start=1)
        if OUTSIDE.search(line)
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    ("source", "target", "problem"),
    [
        ("README.md", "docs/host-agent.md", None),
        ("docs/lab.md", "../README.md#the-local-lab", None),
        ("README.md", "#the-two-commands", None),
        ("README.md", "https://www.pulumi.com/docs/", None),
        ("README.md", "infra/", None),
        ("README.md", "docs/nowhere.md", "not in a clone of the repository: docs/nowhere.md (docs/nowhere.md)"),
        ("README.md", ".lab/env", "not in a clone of the repository: .lab/env (.lab/env)"),
        ("README.md", "../shared/DESIGN.md", "leaves the repository: ../shared/DESIGN.md"),
        ("README.md", "docs/host-agent.md#no-such-heading", "no heading #no-such-heading in docs/host-agent.md"),
    ],
)
def test_link_check_tells_good_links_from_bad(source: str, target: str, problem: str | None) -> None:
    assert link_problem(source, target) == problem


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("The local lab", "the-local-lab"),
        ("Operating the stack: `spot-redis`", "operating-the-stack-spot-redis"),
        (
            "node_exporter, redis_exporter, prometheus, alertmanager",
            "node_exporter-redis_exporter-prometheus-alertmanager",
        ),
        ("Add an event kind (a new `detail-type`)", "add-an-event-kind-a-new-detail-type"),
    ],
)
def test_github_slug(heading: str, slug: str) -> None:
    assert github_slug(heading) == slug


def test_path_check_passes_over_placeholders_and_flags_missing_files() -> None:
    assert path_problem("infra/README.md", "host/user-data.sh") is None
    assert path_problem("README.md", "infra/host.py") == "no such file in the repository: infra/host.py"
    assert code_paths("infra/bootstrap.py")  # it names its shim
    assert not [path for _, path in backtick_paths("README.md") if "<" in path or "*" in path]
