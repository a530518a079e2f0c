"""README.md and docs/*.md point only at things that exist.

Every relative markdown link (images too) must reach a file, and an anchor must match a heading of
the target under GitHub's slug rules. Every project path named in inline code or a code block
(starting with a top-level folder of the project, or a top-level file such as pyproject.toml) must
exist. README stays a short user's guide: at most 250 lines.
"""

import itertools
import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 250

# A project path starts with one of these folders; anything else in backticks (runs/cat, models/cat,
# glcf-demo/…, data/synth, good_images/) is a user's or a command's output and is not checked.
PROJECT_DIRS = r"(?:benchmarks|docs|calibration|tests|\.ci|glcf_[a-z]+)/"
TOP_FILES = ("pyproject.toml", "README.md", "LICENSE", "setup.py", "setup.cfg")
PATH_CHARS = r"(?:[^\s`'\"(),;{}\[\]|]|\{[^{}\s]*\})*"
PROJECT_PATH = re.compile(rf"(?<![\w./-])({PROJECT_DIRS}{PATH_CHARS})")
TOP_FILE = re.compile(r"(?<![\w./-])(" + "|".join(map(re.escape, TOP_FILES)) + r")(?![\w./-])")
# The explicit output rule: a placeholder (`runs/<category>/…`) names no file of the project.
PLACEHOLDER = re.compile(r"[<>]")
# Elided or wildcard names (results files: `…_20261205-211729.json`, `scoring-study_*_…`) must match
# at least one committed file.
WILDCARD = re.compile(r"[*?…]")

FENCE = re.compile(r"^(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def rel(path: Path) -> str:
    """path relative to the repository, where it lies inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def split_fences(text: str) -> tuple[list[str], list[str]]:
    """Lines outside fenced code blocks, and lines inside them."""
    prose, code, fenced = [], [], False
    for line in text.splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        (code if fenced else prose).append(line)
    return prose, code


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"<[^>]+>", "", text).lower()
    kept = (c for c in text if c in " -_" or unicodedata.category(c)[0] in "LNM")
    return "".join(kept).replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    """Every heading anchor of a markdown file, with GitHub's -1, -2 suffixes for repeats."""
    seen: dict[str, int] = {}
    out = set()
    for line in split_fences(doc.read_text(encoding="utf-8"))[0]:
        match = HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return out


def broken_links(doc: Path) -> list[str]:
    """'target: reason' for each relative link of doc that reaches no file or no heading."""
    prose = "\n".join(split_fences(doc.read_text(encoding="utf-8"))[0])
    prose = CODE_SPAN.sub("code", prose)
    problems = []
    for target in LINK.findall(prose):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        dest = (doc.parent / path_part).resolve() if path_part else doc
        if not dest.exists():
            problems.append(f"{target}: {rel(dest)} does not exist")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{target}: no heading of {rel(dest)} has the anchor #{anchor}")
    return problems


def expand_braces(path: str) -> list[str]:
    """`a/test_{x,y}.py` -> [`a/test_x.py`, `a/test_y.py`] (shell brace expansion, one level each)."""
    parts = re.split(r"(\{[^{}]*\})", path)
    choices = [p[1:-1].split(",") if p.startswith("{") else [p] for p in parts]
    return ["".join(c.strip() for c in combo) for combo in itertools.product(*choices)]


def named_paths(doc: Path) -> list[str]:
    """Project paths named in inline code or code blocks of doc."""
    prose, code = split_fences(doc.read_text(encoding="utf-8"))
    texts = [m.group(2) for m in CODE_SPAN.finditer("\n".join(prose))] + code
    found = []
    for text in texts:
        for match in itertools.chain(PROJECT_PATH.finditer(text), TOP_FILE.finditer(text)):
            found.append(match.group(1).rstrip(".:"))
    return found


def missing_paths(doc: Path) -> list[str]:
    """Each named project path that exists nowhere in the tree."""
    problems = []
    for named in named_paths(doc):
        if PLACEHOLDER.search(named):
            continue
        for path in expand_braces(named):
            if WILDCARD.search(path):
                if not list(ROOT.glob(WILDCARD.sub("*", path))):
                    problems.append(f"{named}: no file matches {path}")
            elif not (ROOT / path).exists():
                problems.append(f"{named}: {path} does not exist")
    return problems


@pytest.mark.parametrize("doc", DOCUMENTS, ids=rel)
def test_relative_links_reach_a_file_and_heading(doc):
    problems = broken_links(doc)
    assert not problems, f"{rel(doc)} has broken links (fix the target or the heading):\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("doc", DOCUMENTS, ids=rel)
def test_named_project_paths_exist(doc):
    problems = missing_paths(doc)
    assert not problems, f"{rel(doc)} names paths that do not exist (update the text):\n  " + "\n  ".join(problems)


def test_readme_stays_short():
    n = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines (at most {README_MAX_LINES}): move detail to docs/"


@pytest.mark.parametrize("doc", DOCUMENTS[1:], ids=rel)
def test_each_doc_has_a_title_a_way_back_and_a_way_in(doc):
    lines = [ln for ln in doc.read_text(encoding="utf-8").splitlines() if ln.strip()]
    assert lines[0].startswith("# "), f"{rel(doc)}: the first line must be its '# ' title"
    assert "](../README.md)" in lines[1], f"{rel(doc)}: the line after the title must link back to ../README.md"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"](docs/{doc.name})" in readme, f"README.md does not link to docs/{doc.name}"


@pytest.mark.parametrize("heading, slug", [
    ("6. Inspect (the deployment runtime: numpy, OpenCV, ONNX Runtime or TensorRT — no torch)",
     "6-inspect-the-deployment-runtime-numpy-opencv-onnx-runtime-or-tensorrt--no-torch"),
    ("With an ImageNet Φ_L: the `edge` preset", "with-an-imagenet-φ_l-the-edge-preset"),
    ("The deployment box (no torch)", "the-deployment-box-no-torch"),
    ("A [linked](x.md) heading", "a-linked-heading"),
])
def test_github_slug(heading, slug):
    assert github_slug(heading) == slug


def test_checker_reports_a_broken_link_an_anchor_and_a_path(tmp_path):
    target = tmp_path / "target.md"
    target.write_text("# Title\n\n## Same\n\n## Same\n", encoding="utf-8")
    doc = tmp_path / "doc.md"
    doc.write_text("[ok](target.md#same-1) [gone](missing.md) [bad anchor](target.md#nope)\n"
                   "`[not a link](nowhere.md)` `tests/no_such_test.py` `runs/<category>/x.png`\n"
                   "```bash\npython benchmarks/no_such_script.py --out runs/cat\n```\n", encoding="utf-8")
    links = broken_links(doc)
    assert [p.split(":")[0] for p in links] == ["missing.md", "target.md#nope"]
    assert missing_paths(doc) == ["tests/no_such_test.py: tests/no_such_test.py does not exist",
                                  "benchmarks/no_such_script.py: benchmarks/no_such_script.py does not exist"]
