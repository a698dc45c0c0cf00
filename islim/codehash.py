"""Hashes of the islim code a workflow script runs, from its import graph.

Snakemake reruns a job when its ``script:`` file changes, but not when the library code that script
imports changes. The workflow therefore passes :func:`code_hash` of each rule's script as a
``params: code=`` value: any change to a module the script can execute (or to a data file such a
module reads) changes the hash and reruns the rule's jobs; a change anywhere else does not.

What counts as reachable from a script is found with :mod:`ast` (nothing is imported):

* every ``import islim.a.b``, ``from islim.a import b`` and (inside the package) relative
  ``from .a import b`` / ``from .. import b`` statement that can run, at module level (also under
  ``if TYPE_CHECKING:`` or ``try:``) or inside a function that can run (islim imports heavy modules
  lazily inside functions);
* importing ``islim.a.b`` executes ``islim/__init__.py`` and ``islim/a/__init__.py`` first, so the
  parents' ``__init__.py`` are reachable too;
* ``from islim.a import b`` reaches ``islim/a/b.py`` when ``b`` is a submodule (else ``b`` is a name
  defined in ``islim/a/__init__.py``);
* a string literal that is exactly a dotted module path of the package, optionally followed by
  ``:attribute`` (``"islim.models.linear:MatrixFactorization"``), counts as ``from module import
  attribute`` (or ``import module``): this is how targets of ``importlib.import_module`` named in
  data (the model registry) are found. The literals of a module count as imports of the
  functions in it that call ``import_module`` (when it has such functions), not of the code that
  merely holds the strings: a script that reads the model registry's names and styles does not
  depend on the model classes, one that builds models through it does;
* recursively, every module reached.

Which functions "can run" is decided per module, by name, conservatively. A module's *units* are
its top-level functions and classes (a class with all its methods). Code outside units runs on
import: module-level statements, class bodies, decorators, default values and annotations; the
imports in classes and in decorated functions always count (a metaclass, a base class or the
decorator may register them). A function can run when that code or another unit that can run
names it, when another module imports it by name (``from m import f``), or when the module is
imported as a whole (``import m``, ``from pkg import m``: then every unit counts, as
``m.anything`` may be called); a module-level ``__getattr__`` always can. The imports inside units that cannot run do not count: so a script that
only calls ``islim.pipeline.fetch`` does not depend on the modules that ``islim.pipeline.ease_sweep``
imports lazily. A name that merely looks like a unit (a local variable, say) makes the estimate
larger, never smaller. Calls the walk cannot see: ``globals()[name]`` and
``getattr(module, computed_name)`` on a module imported by name only; islim uses neither.

Package data read at run time is declared, explicitly, by the module that reads it: a module-level

.. code-block:: python

    PACKAGE_DATA = ("reference/published.csv",)

tuple (or list) of string literals, paths relative to the package directory (glob patterns such as
``"reference/*.csv"`` are allowed), counted whenever the module is reached. The walk reads that
assignment from the source; a declared path that matches no file raises :class:`FileNotFoundError`,
so a typo cannot silently drop a file from the hash. Modules should read their data through the
declared path so the two cannot drift apart.

Not followed: module names computed at run time (``import_module(f"islim.{name}")``, relative
names given to ``import_module``); name such a module in a string literal to make it count.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

#: Name of the module-level tuple declaring the package data files a module reads.
DATA_DECLARATION = "PACKAGE_DATA"

#: Hex digits of :func:`code_hash`.
HASH_LENGTH = 16

#: A string literal naming a module (``"a.b"`` or ``"a.b:attr"``), counted as an import of it.
_MODULE_LITERAL = re.compile(r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?::([A-Za-z_]\w*)(?:\.[A-Za-z_]\w*)*)?")

#: Units that run whenever the module is used (PEP 562 module attribute hooks).
_ALWAYS = ("__getattr__", "__dir__")

#: ``used`` value of a module imported as a whole: every unit may run.
ALL = None

#: An import found in the source: ``(level, module, names, whole)``. ``level`` 0 for absolute
#: imports; ``module`` the dotted name after ``from`` (``""`` for ``from . import x``) or after
#: ``import``; ``names`` the names of a ``from`` import; ``whole`` for ``import a.b`` (every module
#: of the chain is bound and may be used through attributes).
Ref = tuple[int, str, tuple[str, ...], bool]


@dataclass
class _Code:
    """Imports and names of a stretch of source (module-level code, or one unit): ``refs`` the
    import statements, ``literals`` the module-naming string literals, ``loads`` whether it calls
    ``import_module``."""

    refs: list[Ref] = field(default_factory=list)
    literals: list[Ref] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    loads: bool = False

    def add(self, nodes: Iterable[ast.AST]) -> None:
        for root in nodes:
            for node in ast.walk(root):
                if isinstance(node, ast.Import):
                    self.refs += [(0, alias.name, (), True) for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    self.refs.append((node.level, node.module or "", tuple(alias.name for alias in node.names), False))
                elif isinstance(node, ast.Name):
                    self.names.add(node.id)
                    self.loads |= node.id == "import_module"
                elif isinstance(node, ast.Attribute) and node.attr == "import_module":
                    self.loads = True
                elif (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and "." in node.value
                    and (match := _MODULE_LITERAL.fullmatch(node.value))
                ):
                    module, attribute = match.groups()
                    self.literals.append((0, module, (attribute,) if attribute else (), attribute is None))


@dataclass
class _Module:
    """One parsed source file: module-level code, units, declared data."""

    top: _Code
    units: dict[str, _Code]
    data: tuple[str, ...]


def _split(tree: ast.Module) -> tuple[list[ast.AST], dict[str, list[ast.AST]], set[str]]:
    """Module-level nodes, the nodes of each unit (top-level function or class), and the units
    that always count: classes (a base class's ``__init_subclass__`` or a metaclass may register
    them) and decorated functions (the decorator may register them)."""
    top: list[ast.AST] = []
    units: dict[str, list[ast.AST]] = {}
    roots: set[str] = set()

    def function(node: ast.FunctionDef | ast.AsyncFunctionDef, unit: str) -> None:
        if node.decorator_list and unit == node.name:
            roots.add(unit)
        top.extend(node.decorator_list)
        top.append(node.args)  # defaults and annotations are evaluated at definition
        if node.returns is not None:
            top.append(node.returns)
        units.setdefault(unit, []).extend(node.body)

    def klass(node: ast.ClassDef, unit: str) -> None:
        roots.add(unit)
        top.extend([*node.decorator_list, *node.bases, *node.keywords])
        units.setdefault(unit, [])
        for statement in node.body:  # the class body runs at definition, its methods when called
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                function(statement, unit)
            elif isinstance(statement, ast.ClassDef):
                klass(statement, unit)
            else:
                top.append(statement)

    for statement in tree.body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function(statement, statement.name)
        elif isinstance(statement, ast.ClassDef):
            klass(statement, statement.name)
        else:
            top.append(statement)
    return top, units, roots


@functools.cache
def _parse(path: str, source: bytes) -> _Module:
    """Parse one source file (cached on its content)."""
    tree = ast.parse(source, filename=path)
    top_nodes, unit_nodes, roots = _split(tree)
    top = _Code()
    top.add(top_nodes)
    top.names |= roots
    units = {}
    for name, nodes in unit_nodes.items():
        units[name] = _Code()
        units[name].add(nodes)
    # Module-naming literals belong to the units that load modules by name, if there are any.
    loaders = [code for code in units.values() if code.loads] or [top]
    literals = [ref for code in (top, *units.values()) for ref in code.literals]
    for code in (top, *units.values()):
        code.literals = []
    for code in loaders:
        code.refs += literals
    data: list[str] = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if not any(isinstance(target, ast.Name) and target.id == DATA_DECLARATION for target in targets):
            continue
        value = node.value
        if not isinstance(value, (ast.Tuple, ast.List)) or not all(
            isinstance(e, ast.Constant) and isinstance(e.value, str) for e in value.elts
        ):
            raise ValueError(f"{path}:{node.lineno}: {DATA_DECLARATION} must be a tuple of string literals (paths relative to the package)")
        data += [element.value for element in value.elts]
    return _Module(top, units, tuple(data))


def _module_file(parts: list[str], package_dir: Path) -> Path | None:
    """The file of the dotted module ``parts`` (without the package name), if it exists in the package."""
    base = package_dir.joinpath(*parts)
    for candidate in (base.with_suffix(".py") if parts else None, base / "__init__.py"):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def _package_parts(path: Path, package_dir: Path) -> list[str] | None:
    """Dotted parts (below the package) of the package a module file belongs to; ``None`` outside it."""
    try:
        relative = path.relative_to(package_dir)
    except ValueError:
        return None
    return list(relative.parent.parts)


def _targets(ref: Ref, here: list[str] | None, package_dir: Path) -> list[tuple[Path, frozenset[str] | None]]:
    """What one import (or module literal) makes reachable: ``(module file, names used)`` pairs,
    ``ALL`` for a module that may be used as a whole, an empty set for a parent package whose
    ``__init__.py`` only runs."""
    level, module, names, whole = ref
    if level:
        if here is None or level - 1 > len(here):  # outside the package, or above its top
            return []
        parts = here[: len(here) - (level - 1)] + (module.split(".") if module else [])
    else:
        dotted = module.split(".")
        if dotted[0] != package_dir.name:
            return []
        parts = dotted[1:]
    found = []
    for depth in range(len(parts) + 1):
        path = _module_file(parts[:depth], package_dir)
        if path is None:
            continue
        if whole:
            found.append((path, ALL))  # `import a.b.c` binds a; a.b.c and its parents are usable
        elif depth == len(parts):
            found.append((path, frozenset(names) if "*" not in names else ALL))
        else:
            found.append((path, frozenset()))
    if not whole:
        for name in names:
            if name != "*" and (submodule := _module_file([*parts, name], package_dir)) is not None:
                found.append((submodule, ALL))
    return found


def reachable_modules(script: Path, package_dir: Path) -> list[Path]:
    """Files of the package ``package_dir`` that running ``script`` can execute or read, sorted.

    Walks the import statements of ``script`` (all of it may run) and, recursively, those of the
    package modules reached, counting the imports inside a module's functions and classes only when
    they can run (see the module docstring); adds each reached module's parent ``__init__.py`` files
    and its declared :data:`DATA_DECLARATION` files. ``script`` itself is not listed unless it lies
    in the package.

    Parameters
    ----------
    script : Path
        A Python file, e.g. ``workflow_scripts/train.py`` (only parsed, never run).
    package_dir : Path
        The package's directory, e.g. ``islim/``; its name is the package name.

    Returns
    -------
    list of Path
        Resolved paths of the reachable modules and data files, sorted.

    Raises
    ------
    FileNotFoundError
        A module's :data:`DATA_DECLARATION` names a path that matches no file.
    ValueError
        A :data:`DATA_DECLARATION` that is not a tuple or list of string literals.
    SyntaxError
        A reached module does not parse.
    """
    package_dir = Path(package_dir).resolve()
    script = Path(script).resolve()
    parsed: dict[Path, _Module] = {}
    used: dict[Path, set[str] | None] = {}  # names of the module's units used; ALL: every unit
    done: dict[Path, set[str]] = {}  # units whose imports were followed
    data: set[Path] = set()
    pending: list[tuple[Path, frozenset[str] | None]] = [(script, ALL)]
    while pending:
        path, names = pending.pop()
        first = path not in parsed
        if first:
            parsed[path] = module = _parse(str(path), path.read_bytes())
            used[path], done[path] = set(), set()
            for pattern in module.data:
                matches = sorted(p for p in package_dir.glob(pattern) if p.is_file())
                if not matches:
                    raise FileNotFoundError(f"{path}: {DATA_DECLARATION} names {pattern!r}, which matches no file under {package_dir}")
                data.update(matches)
        module = parsed[path]
        before = used[path]
        if before is not ALL:
            used[path] = ALL if names is ALL else before | names
        if not first and used[path] == before:
            continue
        here = _package_parts(path, package_dir)
        follow: list[_Code] = [module.top] if first else []
        # The units that can run: those named by module-level code, used from outside, or named by
        # a unit that can run (a closure over names).
        wanted = set(module.units) if used[path] is ALL else ({*module.top.names, *used[path], *_ALWAYS} & set(module.units))
        stack = list(wanted - done[path])
        while stack:
            unit = stack.pop()
            if unit in done[path]:
                continue
            done[path].add(unit)
            follow.append(module.units[unit])
            stack += [name for name in module.units[unit].names & set(module.units) if name not in done[path]]
        for code in follow:
            for ref in code.refs:
                pending += _targets(ref, here, package_dir)
    reached = {path for path in parsed if _package_parts(path, package_dir) is not None}
    return sorted(reached | data)


def code_hash(script: Path, package_dir: Path) -> str:
    """First :data:`HASH_LENGTH` hex digits of the sha256 over :func:`reachable_modules` of ``script``:
    each file's path relative to the package's parent (e.g. ``islim/gram.py``) and its bytes.

    The hash does not depend on where the tree lies, only on what is reachable and its content;
    ``script`` itself is left out (Snakemake tracks a rule's ``script:`` on its own).

    Parameters
    ----------
    script, package_dir : Path
        As for :func:`reachable_modules`.

    Returns
    -------
    str
        16 lowercase hex digits.
    """
    package_dir = Path(package_dir).resolve()
    digest = hashlib.sha256()
    for path in reachable_modules(script, package_dir):
        content = path.read_bytes()
        digest.update(path.relative_to(package_dir.parent).as_posix().encode() + b"\0")
        digest.update(len(content).to_bytes(8, "little") + content)
    return digest.hexdigest()[:HASH_LENGTH]
