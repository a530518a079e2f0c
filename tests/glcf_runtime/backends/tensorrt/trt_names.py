"""The TensorRT names a set of product files uses, read from their AST (:func:`collect_uses`), and
their check against NVIDIA's compiled bindings (:func:`check_names`); the tests are in
``test_trt_bindings_names.py``."""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.glcf_runtime.backends.tensorrt.trt_bindings import (
    REPO,
    SOURCES_ENV,
    Binding,
    Guard,
    Stubs,
    Use,
    evaluate,
    module_name,
)

MODULE = ("module",)  # the type of a name bound to the tensorrt module itself


class Collector:
    """Bindings of names to TensorRT types, grown over repeated passes until nothing changes."""

    def __init__(self, files: list[Path], stubs: Stubs, modules: tuple[str, ...], label: str) -> None:
        self.stubs, self.modules, self.label = stubs, modules, label
        self.trees = {f: ast.parse(f.read_text(), str(f)) for f in files}
        self.by_module = {module_name(f): f for f in files}
        self.owner: dict[Any, str | None] = {}  # function node -> its class name (None: a function)
        self.file_of: dict[Any, Path] = {}  # function node -> its file
        self.imports: dict[Path, dict[str, tuple[str, str]]] = {}  # file -> name -> (module, name)
        for file, tree in self.trees.items():
            found = self.imports[file] = {}
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    for item in node.body:
                        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                            self.owner[item] = node.name
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    self.owner.setdefault(node, None)
                    self.file_of[node] = file
                elif isinstance(node, ast.ImportFrom):
                    base = module_name(file).split(".")[: -node.level] if node.level else []
                    module = ".".join([*base, *([node.module] if node.module else [])])
                    for alias in node.names:
                        found[alias.asname or alias.name] = (module, alias.name)
        self.env: dict[Any, dict[str, Any]] = {}  # scope (file or function node) -> name -> type
        self.self_attrs: dict[tuple[Path, str], dict[str, Any]] = {}  # class -> self.<attr> -> type
        self.returns: dict[Any, Any] = {}  # function node -> the type it returns
        self.params: dict[tuple[Any, str], Any] = {}  # (function node, parameter) -> argument type
        self.uses: dict[tuple, Use] = {}
        self.guards: tuple[Guard, ...] = ()

    def state(self) -> tuple[int, ...]:
        return (len(self.uses), sum(map(len, self.env.values())), len(self.params),
                len(self.returns), sum(map(len, self.self_attrs.values())))

    def run(self) -> list[Use]:
        for _ in range(8):
            before = self.state()
            for file, tree in self.trees.items():
                self.file, self.fn, self.cls = file, None, None
                self.chain = [self.env.setdefault(file, {})]
                self._body(tree.body, ())
                for fn in (f for f, where in self.file_of.items() if where == file):
                    self._function(fn)
            if self.state() == before:
                break
        return sorted(self.uses.values(), key=lambda u: (str(u.file), u.line, u.owner, u.name))

    # scopes and calls between the project's own functions
    def _function(self, fn: Any) -> None:
        self.fn, self.cls, self.guards = fn, self.owner[fn], ()
        self.chain = [self.env.setdefault(fn, {}), self.env[self.file]]
        for a in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]:
            typ = self._annotation(a.annotation) or self.params.get((fn, a.arg))
            if typ is not None:
                self.chain[0][a.arg] = typ
        typ = self._annotation(fn.returns)
        if typ is not None:
            self.returns.setdefault(fn, typ)
        self._body(fn.body, ())

    def _top_level(self, file: Path, name: str) -> Any:
        for node in self.trees[file].body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == name:
                return node
        module, original = self.imports[file].get(name, (None, None))
        if module in self.by_module and self.by_module[module] != file:
            return self._top_level(self.by_module[module], original)
        return None

    def _targets(self, func: ast.expr) -> tuple[Any, bool]:
        """The project function a call reaches, and whether its first parameter is bound."""
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
                and func.value.id == "self" and self.cls:
            for fn, cls in self.owner.items():
                if cls == self.cls and fn.name == func.attr and self.file_of[fn] == self.file:
                    return fn, True
            return None, False
        if isinstance(func, ast.Name):
            node = self._top_level(self.file, func.id)
            if isinstance(node, ast.ClassDef):
                init = [n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"]
                return (init[0], True) if init else (None, False)
            return node, False
        return None, False

    # statements
    def _stmt(self, s: ast.stmt, guards: tuple[Guard, ...]) -> tuple[Guard, ...]:
        """Walk ``s``; returns the guards the statements after it run under (an ``if`` whose
        body always returns or raises puts the rest of the block under its negation)."""
        self.guards = guards
        if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            return ()
        if isinstance(s, ast.Import | ast.ImportFrom):
            for alias in s.names:
                full = alias.name if isinstance(s, ast.Import) else f"{s.module}.{alias.name}"
                if full in self.modules:
                    self.chain[0][alias.asname or alias.name.split(".")[0]] = MODULE
        elif isinstance(s, ast.If):
            self._expr(s.test)
            made = self._guards(s.test)
            self._body(s.body, guards + made)
            flipped = tuple(Guard(g.kind, g.text, not g.positive, g.names, g.predicate) for g in made)
            self._body(s.orelse, guards + flipped)
            if not s.orelse and isinstance(s.body[-1], ast.Return | ast.Raise | ast.Continue):
                return flipped
        elif isinstance(s, ast.Assign | ast.AnnAssign | ast.AugAssign):
            typ = self._expr(s.value) if s.value is not None else None
            if isinstance(s, ast.AnnAssign):
                typ = self._annotation(s.annotation) or typ
            for target in s.targets if isinstance(s, ast.Assign) else [s.target]:
                self._bind(target, typ)
        elif isinstance(s, ast.For | ast.AsyncFor):
            typ = self._expr(s.iter)
            self._bind(s.target, typ[1] if isinstance(typ, tuple) and typ[0] == "seq" else None)
            self._body(s.body + s.orelse, guards)
        elif isinstance(s, ast.With | ast.AsyncWith):
            for item in s.items:
                self._bind(item.optional_vars, self._expr(item.context_expr)) if item.optional_vars \
                    else self._expr(item.context_expr)
            self._body(s.body, guards)
        elif isinstance(s, ast.Try):
            self._body(s.body + s.orelse + s.finalbody, guards)
            for handler in s.handlers:
                self._body(handler.body, guards)
        elif isinstance(s, ast.While):
            self._expr(s.test)
            self._body(s.body + s.orelse, guards)
        elif isinstance(s, ast.Return) and s.value is not None:
            typ = self._expr(s.value)
            if typ is not None and self.fn is not None:
                self.returns.setdefault(self.fn, typ)
        else:
            for child in ast.iter_child_nodes(s):
                if isinstance(child, ast.expr):
                    self._expr(child)
        return ()

    def _body(self, body: list[ast.stmt], guards: tuple[Guard, ...]) -> None:
        for stmt in body:
            guards = guards + self._stmt(stmt, guards)

    def _guards(self, test: ast.expr) -> tuple[Guard, ...]:
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            return tuple(Guard(g.kind, g.text, not g.positive, g.names, g.predicate)
                         for g in self._guards(test.operand))
        text, found = ast.unparse(test), []
        for node in ast.walk(test):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "hasattr" and len(node.args) == 2
                    and isinstance(node.args[1], ast.Constant)):
                found.append(Guard("hasattr", text, True, (str(node.args[1].value),)))
        body = self.fn.body if self.fn is not None else self.trees[self.file].body
        assigned = {n.targets[0].id: n.value for n in ast.walk(ast.Module(body=body, type_ignores=[]))
                    if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)}
        names = {n.id for n in ast.walk(test) if isinstance(n, ast.Name)}
        # A test of __version__ (directly or through names assigned from it) is evaluated for each
        # version; one of anything else named *version* (a parsed version object) is reported.
        if "version" in (text + "".join(ast.unparse(assigned[n]) for n in names if n in assigned)).lower():
            aliases = [n for scope in self.chain for n, t in scope.items() if t == MODULE]

            def predicate(version: str) -> bool | None:
                try:
                    return bool(evaluate(test, aliases, assigned, version))
                except Exception:  # depends on something other than the version: not evaluable
                    return None

            found.append(Guard("version", text, True, predicate=predicate))
        return tuple(found)

    def _bind(self, target: ast.expr, typ: Any) -> None:
        if isinstance(target, ast.Name) and typ is not None:
            self.chain[0].setdefault(target.id, typ)
        elif (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
              and target.value.id == "self" and self.cls and typ is not None):
            self.self_attrs.setdefault((self.file, self.cls), {}).setdefault(target.attr, typ)
        elif isinstance(target, ast.Tuple | ast.List):
            for i, element in enumerate(target.elts):
                if isinstance(typ, tuple) and typ[0] == "tuple" and i < len(typ[1]):
                    self._bind(element, typ[1][i])
                elif isinstance(typ, tuple) and typ[0] == "seq":
                    self._bind(element, typ[1])
        elif isinstance(target, ast.Attribute | ast.Subscript):
            self._expr(target.value)

    # expressions
    def _record(self, node: ast.AST, owner: str, name: str, kind: str = "attribute",
                extra: tuple[Guard, ...] = ()) -> None:
        use = Use(self.file, getattr(node, "lineno", 0), owner, name, self.guards + extra, kind)
        self.uses.setdefault((use.file, use.line, owner, name, kind), use)

    def _annotation(self, ann: ast.expr | None) -> Any:
        if isinstance(ann, ast.Constant) and isinstance(ann.value, str):
            try:
                ann = ast.parse(ann.value, mode="eval").body
            except SyntaxError:
                return None
        typ = None
        for node in ast.walk(ann) if ann is not None else ():
            if isinstance(node, ast.Attribute) and self._lookup(node.value) == MODULE:
                self._record(node, self.label, node.attr, "annotation")
                typ = typ or ("inst", node.attr)
        return typ

    def _lookup(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Name):
            for scope in self.chain:
                if node.id in scope:
                    return scope[node.id]
        return None

    def _attribute(self, node: ast.AST, base: Any, attr: str, extra: tuple[Guard, ...] = ()) -> Any:
        if base == MODULE:
            self._record(node, self.label, attr, extra=extra)
            return ("class", attr) if attr in self.stubs.classes else ("member", self.label, attr)
        if isinstance(base, tuple) and base[0] == "member" and not self.stubs.classes:  # no stubs
            self._record(node, base[2], attr, extra=extra)
            return ("member", base[2], attr)
        if not (isinstance(base, tuple) and base[0] in ("class", "inst")):
            return None
        self._record(node, base[1], attr, extra=extra)
        found = self.stubs.member(base[1], attr)
        if found is None or found[0] == "class":
            return found
        return ("member", base[1], attr) if found[0] == "method" else self.stubs.type_of(found[1])

    def _expr(self, node: ast.expr | None) -> Any:
        if node is None:
            return None
        if isinstance(node, ast.Name):
            return self._lookup(node)
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "self" and self.cls:
                return self.self_attrs.get((self.file, self.cls), {}).get(node.attr)
            return self._attribute(node, self._expr(node.value), node.attr)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Subscript):
            base = self._expr(node.value)
            self._expr(node.slice)
            return base[1] if isinstance(base, tuple) and base[0] == "seq" else None
        if isinstance(node, ast.Tuple | ast.List):
            return ("tuple", [self._expr(e) for e in node.elts])
        types = []
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                types.append(self._expr(child))
            elif isinstance(child, ast.comprehension):
                self._expr(child.iter)
                for cond in child.ifs:
                    self._expr(cond)
        if isinstance(node, ast.IfExp | ast.BoolOp):
            return next((t for t in types if t is not None and t[0] != "tuple"), None)
        return None

    def _call(self, node: ast.Call) -> Any:
        func = node.func
        args = [self._expr(a) for a in node.args]
        kwargs = {kw.arg: self._expr(kw.value) for kw in node.keywords}
        if (isinstance(func, ast.Name) and func.id in ("getattr", "hasattr") and len(args) >= 2
                and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
            optional = func.id == "hasattr" or len(args) == 3
            guard = (Guard("hasattr", ast.unparse(node), True, (node.args[1].value,)),)
            typ = self._attribute(node, args[0], node.args[1].value, guard if optional else ())
            return typ if func.id == "getattr" else None
        callee = self._expr(func)
        if isinstance(callee, tuple) and callee[0] in ("class", "member"):
            for kw in node.keywords:
                if kw.arg:
                    self._record(kw, callee[1], kw.arg, "keyword")
            if callee[0] == "class":
                return ("inst", callee[1])
            if callee[1] == self.label:
                return self.stubs.type_of(self.stubs.functions.get(callee[2]))
            found = self.stubs.member(callee[1], callee[2])
            return self.stubs.type_of(found[1]) if found and found[0] == "method" else None
        target, bound = self._targets(func)
        if target is None:
            return None
        params = [a.arg for a in [*target.args.posonlyargs, *target.args.args]]
        for param, typ in [*zip(params[1:] if bound else params, args, strict=False), *kwargs.items()]:
            if typ is not None and param:
                self.params.setdefault((target, param), typ)
        return self.returns.get(target)


def collect_uses(files: list[Path], stubs: Stubs, modules: tuple[str, ...] = ("tensorrt",),
                 label: str = "tensorrt") -> list[Use]:
    """Every read of a name of ``modules`` (owner ``label``), and of what is reached from it."""
    return Collector(files, stubs, modules, label).run()


@dataclass
class Report:
    problems: list[str]  # a name missing from a version that runs it
    notes: list[str]  # what the check could not decide (reported, not failed)
    checked: int


def _where(use: Use) -> str:
    root = Path(os.environ.get(SOURCES_ENV) or REPO)
    file = use.file.relative_to(root) if use.file.is_relative_to(root) else use.file
    return f"{file}:{use.line} {use.owner}.{use.name} ({use.kind})"


def check_names(files: list[Path], bindings: dict[str, Binding], stubs: Stubs) -> Report:
    """Each TensorRT name of ``files`` against the bindings of each version its branch runs on."""
    report, versions = Report([], [], 0), list(bindings)
    for use in collect_uses(files, stubs):
        report.checked += 1
        have = [v for v in versions if bindings[v].has(use.name)]
        branches = [g for g in use.guards if g.kind == "version"]
        outcomes = {v: [g.predicate(v) for g in branches] for v in versions}
        runs_on = [v for v in versions if all(o == g.positive for o, g in zip(outcomes[v], branches, strict=True))]
        optional = any(g.kind == "hasattr" and g.positive and use.name in g.names for g in use.guards)
        if any(None in o for o in outcomes.values()) or optional:
            why = " and ".join(f"`{g.text}`" for g in use.guards)
            if not have:
                report.problems.append(f"{_where(use)}: under {why} but in no TensorRT version "
                                       f"checked ({', '.join(versions)}): misspelt?")
            elif len(have) < len(versions):
                report.notes.append(f"{_where(use)}: under {why}, which this check does not "
                                    f"decide; present in TensorRT {', '.join(have)} only")
            continue
        lacking = [v for v in runs_on if v not in have]
        if lacking:
            report.problems.append(f"{_where(use)}: not in the compiled bindings of TensorRT "
                                   f"{', '.join(lacking)}")
        if not runs_on:
            report.notes.append(f"{_where(use)}: its branch runs on none of TensorRT "
                                f"{', '.join(versions)}")
    return report
