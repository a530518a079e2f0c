"""NVIDIA's real TensorRT bindings and cuda-python, fetched for checks that need no GPU.

``python -m tests.glcf_runtime.backends.tensorrt.trt_bindings fetch`` fills the cache folder
(``$GLCF_TRT_CHECK_CACHE``, default ``.ci/cache/tensorrt-check``, git-ignored by its own
``.gitignore``): the bindings wheels of :data:`BINDINGS` (``pip download --no-deps``; their
``tensorrt.so`` cannot be imported without libnvinfer, so its names are read as the strings in
the file), ``tensorrt-stubs`` and, per TensorRT extra of pyproject.toml, the cuda-python it pins
(both ``pip install --target``, outside the virtualenv: torch needs cuda-bindings 13).
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[4]
BINDINGS = ("tensorrt-cu12-bindings==10.3.0", "tensorrt-cu12-bindings==11.4.0.106")
STUBS = "tensorrt-stubs==10.13.0.35.1"
CACHE_ENV = "GLCF_TRT_CHECK_CACHE"
SOURCES_ENV = "GLCF_TRT_CHECK_SOURCES"  # another copy of the product tree to check (a planted mistake)


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or REPO / ".ci" / "cache" / "tensorrt-check")


def missing(what: str) -> None:
    """Skip (fail under CI=true) because ``what`` was not fetched into the cache."""
    message = (f"{what} is not in {cache_dir()}: run `python -m tests.glcf_runtime.backends."
               "tensorrt.trt_bindings fetch` (.ci/run does) or set GLCF_TRT_CHECK_CACHE")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def wheels() -> dict[str, Path]:
    """Version → bindings wheel in the cache, for each of :data:`BINDINGS` (skips if any is absent)."""
    found = {}
    for requirement in BINDINGS:
        version = requirement.split("==")[1]
        hits = sorted((cache_dir() / "wheels").glob(f"tensorrt_cu12_bindings-{version}-*.whl"))
        if not hits:
            missing(requirement)
        found[version] = hits[0]
    return found


def stubs_dir() -> Path:
    folder = cache_dir() / "stubs"
    if not (folder / "tensorrt_bindings" / "tensorrt.pyi").is_file():
        missing(STUBS)
    return folder


def product_files() -> list[Path]:
    """Every .py file of the packages pyproject.toml installs (under $GLCF_TRT_CHECK_SOURCES if set)."""
    root = Path(os.environ.get(SOURCES_ENV) or REPO)
    text = (REPO / "pyproject.toml").read_text()
    block = re.search(r"\[tool\.setuptools\.packages\.find\]\s*include\s*=\s*\[([^\]]*)\]", text)
    assert block, "pyproject.toml has no [tool.setuptools.packages.find] include list"
    tops = sorted({p.strip().strip("\"'").rstrip("*") for p in block.group(1).split(",") if p.strip()})
    return sorted(f for top in tops for f in (root / top).rglob("*.py"))


# --- the compiled module ----------------------------------------------------------------------


@dataclass(frozen=True)
class Binding:
    """One bindings wheel: the NUL-terminated strings of tensorrt.so and the names __init__.py adds."""

    version: str
    strings: bytes  # every printable NUL-terminated string of the .so, each followed by NUL
    python_names: frozenset[str]

    def has(self, name: str) -> bool:
        # The linker stores a string that ends another one as that one's tail ("INPUT" inside
        # "CONDITIONAL_INPUT"), so a name is there when some string of the file ends with it.
        return name in self.python_names or (name.encode() + b"\0") in self.strings


def read_binding(version: str, wheel: Path) -> Binding:
    with zipfile.ZipFile(wheel) as archive:
        so = archive.read("tensorrt_bindings/tensorrt.so")
        init = archive.read("tensorrt_bindings/__init__.py").decode()
    strings = b"\0".join(re.findall(rb"([\x20-\x7e]+)\x00", so)) + b"\0"
    names, pending = set(), list(ast.parse(init).body)
    while pending:  # module-level names (not the locals of its functions)
        node = pending.pop()
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)  # Logger.Severity, DataType.itemsize, ...
        pending.extend(ast.iter_child_nodes(node))
    return Binding(version, strings, frozenset(names))


# --- the stubs (class structure and return types only) -----------------------------------------


def parse_stub(text: str) -> ast.Module:
    """tensorrt-stubs 10.13 has a def whose defaults are out of order (``add_scale_nd``); such a
    line keeps its name and return annotation and takes ``*args``."""
    lines = text.split("\n")
    for _ in range(100):
        try:
            return ast.parse("\n".join(lines))
        except SyntaxError as exc:
            line = lines[(exc.lineno or 1) - 1]
            fixed = re.sub(r"^(\s*def \w+)\(.*\)(\s*->.*:)\s*$", r"\1(self, *args, **kwargs)\2", line)
            if fixed == line:
                raise
            lines[(exc.lineno or 1) - 1] = fixed
    raise SyntaxError("too many unparsable lines in the stubs")


class Stubs:
    """Classes (with bases and members) and module functions of tensorrt-stubs."""

    def __init__(self, folder: Path | None) -> None:
        self.classes: dict[str, dict[str, Any]] = {}
        self.functions: dict[str, ast.expr | None] = {}
        if folder is None:
            return
        for name in ("tensorrt.pyi", "__init__.pyi"):
            tree = parse_stub((folder / "tensorrt_bindings" / name).read_text())
            for node in tree.body:
                if isinstance(node, ast.ClassDef):
                    self._add_class(node, node.name)
                elif isinstance(node, ast.FunctionDef):
                    self.functions.setdefault(node.name, node.returns)

    def _add_class(self, node: ast.ClassDef, qual: str) -> None:
        members: dict[str, Any] = {}
        for item in node.body:
            if isinstance(item, ast.ClassDef):
                members[item.name] = ("class", f"{qual}.{item.name}")
                self._add_class(item, f"{qual}.{item.name}")
            elif isinstance(item, ast.FunctionDef) and item.name not in members:
                prop = any(isinstance(d, ast.Name) and d.id == "property" for d in item.decorator_list)
                members[item.name] = ("value" if prop else "method", item.returns)
            elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                members[item.target.id] = ("value", item.annotation)
        bases = [ast.unparse(b) for b in node.bases]
        self.classes[qual] = {"bases": bases, "members": members}

    def member(self, cls: str, name: str) -> Any:
        seen = [cls]
        while seen:
            info = self.classes.get(seen.pop(0))
            if info is None:
                continue
            if name in info["members"]:
                return info["members"][name]
            seen += [b for b in info["bases"] if b in self.classes]
        return None

    def type_of(self, ann: ast.expr | None) -> Any:
        """The inferred type an annotation of the stubs stands for."""
        if ann is None:
            return None
        if isinstance(ann, ast.Subscript):
            head = ast.unparse(ann.value).rpartition(".")[2]
            inner = self.type_of(ann.slice)
            if head in ("list", "List", "Sequence", "tuple") and inner is not None:
                return ("seq", inner)
            return inner if head in ("ClassVar", "Optional") else None
        if isinstance(ann, ast.BinOp):  # X | None
            return self.type_of(ann.left) or self.type_of(ann.right)
        name = ast.unparse(ann)
        return ("inst", name) if name in self.classes else None


# --- the product code -------------------------------------------------------------------------


@dataclass(frozen=True)
class Guard:
    """An ``if`` a use sits under: ``hasattr(x, "name")`` or a test of the TensorRT version."""

    kind: str  # "hasattr" or "version"
    text: str
    positive: bool
    names: tuple[str, ...] = ()  # hasattr: the attribute names it tests
    predicate: Any = None  # version: callable(version) -> bool, or None where it is not evaluable


@dataclass(frozen=True)
class Use:
    file: Path
    line: int
    owner: str  # "tensorrt", or the TensorRT class the name is read on
    name: str
    guards: tuple[Guard, ...] = ()
    kind: str = "attribute"  # "attribute", "keyword" (argument name) or "annotation"


SAFE_BUILTINS = {f.__name__: f for f in (int, str, tuple, list, map, len, float, min, max)}


def evaluate(node: ast.expr, aliases: list[str], assigned: dict[str, ast.expr], version: str,
             depth: int = 0) -> Any:
    """``node`` with the module's ``__version__`` = ``version`` (names assigned earlier in the
    function are evaluated first); raises where it depends on anything else."""
    space: dict[str, Any] = {a: SimpleNamespace(__version__=version) for a in aliases}
    for name in {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} - set(space):
        if name in assigned and depth < 5:
            space[name] = evaluate(assigned[name], aliases, assigned, version, depth + 1)
    code = compile(ast.Expression(node), "<guard>", "eval")
    return eval(code, {"__builtins__": SAFE_BUILTINS}, space)  # the project's own test expression


def module_name(file: Path) -> str:
    """The dotted name Python imports ``file`` as (up through the folders with __init__.py)."""
    parts, folder = [file.stem], file.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(p for p in parts if p != "__init__")


def copy_tensorrt_package(dest: Path) -> list[Path]:
    """The runtime package copied under ``dest`` (to plant a mistake in); returns the copies of
    the tensorrt backend's files."""
    shutil.copytree(REPO / "glcf_runtime", dest / "glcf_runtime",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return sorted((dest / "glcf_runtime" / "backends" / "tensorrt").glob("*.py"))


def cuda_python_pins() -> dict[str, str]:
    """TensorRT extra of pyproject.toml → the cuda-python requirement it pins."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: only this virtualenv's cuda-python is checked
        return {}

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    return {extra: r for extra, reqs in sorted(extras.items()) if extra.startswith("trt")
            for r in reqs if re.match(r"cuda-python\b", r)}


def _install_cuda_only(pip: list[str], requirement: str, folder: Path) -> None:
    """``requirement`` and the ``cuda-*`` packages it pulls, in one ``--no-deps`` install into
    ``folder`` (the rest, numpy for one, comes from the virtualenv: the folder shadows only CUDA's)."""
    import json
    import tempfile

    shutil.rmtree(folder, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run([*pip, "install", "--dry-run", "--ignore-installed", "--report", str(report),
                        requirement], check=True)
        items = [i["metadata"] for i in json.loads(report.read_text())["install"]]
    pins = [f"{m['name']}=={m['version']}" for m in items if m["name"].lower().startswith("cuda-")]
    subprocess.run([*pip, "install", "--no-deps", "--no-warn-conflicts", "--target", str(folder),
                    *pins], check=True)
    (folder / "requirement.txt").write_text(requirement)


def fetch() -> None:
    """Download the bindings wheels, install the stubs and the pinned cuda-python into the cache."""
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    (cache / ".gitignore").write_text("*\n")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    have = {p.name for p in (cache / "wheels").glob("*.whl")} if (cache / "wheels").is_dir() else set()
    wanted = [r for r in BINDINGS if not any(f"-{r.split('==')[1]}-" in h for h in have)]
    for requirement in wanted:  # one at a time: two versions of one package never resolve together
        subprocess.run([*pip, "download", "--no-deps", "-d", str(cache / "wheels"), requirement],
                       check=True)
    if not list((cache / "stubs").glob(f"tensorrt_stubs-{STUBS.split('==')[1]}.dist-info")):
        shutil.rmtree(cache / "stubs", ignore_errors=True)
        subprocess.run([*pip, "install", "--no-deps", "--target", str(cache / "stubs"), STUBS], check=True)
    for extra, requirement in cuda_python_pins().items():
        stamp = cache / "cuda-python" / extra / "requirement.txt"
        if not stamp.is_file() or stamp.read_text() != requirement:
            _install_cuda_only(pip, requirement, stamp.parent)
    print(f"tensorrt check cache ready: {cache}")


if __name__ == "__main__":
    if sys.argv[1:] != ["fetch"]:
        sys.exit("usage: python -m tests.glcf_runtime.backends.tensorrt.trt_bindings fetch")
    fetch()
