"""Hashes of the islim code a workflow script runs, from its import graph.

Snakemake reruns a job when its ``script:`` file changes, but not when the library code that script
imports changes. The workflow therefore passes :func:`code_hash` of each rule's script as a
``params: code=`` value: any change to a module the script can execute (or to a data file such a
module reads) changes the hash and reruns the rule's jobs; a change anywhere else does not.

What counts as reachable from a script (found with :mod:`ast`, nothing is imported):

* every ``import islim.a.b``, ``from islim.a import b`` and (inside the package) relative
  ``from .a import b`` / ``from .. import b`` statement, wherever it sits: module level, inside
  functions (islim imports heavy modules lazily), under ``if TYPE_CHECKING:`` or ``try:``. A
  statement that never runs makes the estimate conservative, never too small;
* importing ``islim.a.b`` executes ``islim/__init__.py`` and ``islim/a/__init__.py`` first, so the
  parents' ``__init__.py`` are reachable too;
* ``from islim.a import b`` reaches ``islim/a/b.py`` when ``b`` is a submodule (else ``b`` is a name
  defined in ``islim/a/__init__.py``, which is reachable anyway);
* a string literal that is exactly a dotted module path of the package, optionally followed by
  ``:attribute`` (``"islim.models.linear:MatrixFactorization"``), counts as an import of that
  module: this is how targets of ``importlib.import_module`` named in data (the model registry)
  are found. A literal naming a module that is not imported only makes the estimate conservative;
* recursively, every module reached.

Package data read at run time is declared, explicitly, by the module that reads it: a module-level

.. code-block:: python

    PACKAGE_DATA = ("reference/published.csv",)

tuple (or list) of string literals, paths relative to the package directory (glob patterns such as
``"reference/*.csv"`` are allowed). The walk reads that assignment from the source; a declared path
that matches no file raises :class:`FileNotFoundError`, so a typo cannot silently drop a file from
the hash. Modules should read their data through the declared path so the two cannot drift apart.

Not followed: module names computed at run time (``import_module(f"islim.{name}")``, relative
names given to ``import_module``) and star imports of submodules; islim uses none of these for its
own modules. Name such a module in a string literal (e.g. a registry entry) to make it count.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import re
from pathlib import Path

#: Name of the module-level tuple declaring the package data files a module reads.
DATA_DECLARATION = "PACKAGE_DATA"

#: Hex digits of :func:`code_hash`.
HASH_LENGTH = 16

#: A string literal naming a module (``"a.b"`` or ``"a.b:attr"``), counted as an import of it.
_MODULE_LITERAL = re.compile(r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?::[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)?")


@functools.lru_cache(maxsize=None)
def _parse(path: str, source: bytes) -> tuple[tuple[tuple[int, str, tuple[str, ...]], ...], tuple[str, ...]]:
    """The import statements and the data declaration of one source file (cached on its content).

    Imports are ``(level, module, names)``: ``level`` 0 for absolute imports, ``module`` the dotted
    name after ``from`` (``""`` for ``from . import x``) or after ``import``, ``names`` the imported
    names of a ``from`` statement (empty for ``import``). String literals shaped like a dotted module
    name (with at least one dot, optionally ``:attribute``) are listed as absolute imports too; the
    caller keeps those inside the package that name an existing module.
    """
    tree = ast.parse(source, filename=path)
    imports: list[tuple[int, str, tuple[str, ...]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports += [(0, alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            imports.append((node.level, node.module or "", tuple(alias.name for alias in node.names)))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "." in node.value and (match := _MODULE_LITERAL.fullmatch(node.value)):
            imports.append((0, match.group(1), ()))
    data: list[str] = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if not any(isinstance(target, ast.Name) and target.id == DATA_DECLARATION for target in targets):
            continue
        value = node.value
        if not isinstance(value, (ast.Tuple, ast.List)) or not all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in value.elts):
            raise ValueError(f"{path}:{node.lineno}: {DATA_DECLARATION} must be a tuple of string literals (paths relative to the package)")
        data += [element.value for element in value.elts]
    return tuple(imports), tuple(data)


def _module_file(parts: list[str], package_dir: Path) -> Path | None:
    """The file of the dotted module ``parts`` (without the package name), if it exists in the package."""
    base = package_dir.joinpath(*parts)
    for candidate in (base.with_suffix(".py") if parts else None, base / "__init__.py"):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def _with_parents(parts: list[str], package_dir: Path) -> list[Path]:
    """The module's own file plus the ``__init__.py`` of every package above it (all that import runs)."""
    files = [init for depth in range(len(parts)) if (init := package_dir.joinpath(*parts[:depth], "__init__.py")).is_file()]
    own = _module_file(parts, package_dir)
    return files + ([own] if own is not None else [])


def _package_parts(path: Path, package_dir: Path) -> list[str] | None:
    """Dotted parts (below the package) of the package a module file belongs to; ``None`` outside it."""
    try:
        relative = path.relative_to(package_dir)
    except ValueError:
        return None
    return list(relative.parent.parts)


def _references(path: Path, source: bytes, package_dir: Path) -> tuple[list[Path], list[Path]]:
    """The package modules and declared data files one file reaches directly."""
    imports, data = _parse(str(path), source)
    package = package_dir.name
    here = _package_parts(path, package_dir)
    modules: list[Path] = []
    for level, module, names in imports:
        if level:
            if here is None:  # a relative import in a file outside the package: not ours
                continue
            base = here[: len(here) - (level - 1)] if level - 1 <= len(here) else None
            if base is None:
                continue
            parts = base + (module.split(".") if module else [])
        else:
            dotted = module.split(".")
            if dotted[0] != package:
                continue
            parts = dotted[1:]
        modules += _with_parents(parts, package_dir)
        for name in names:
            if name != "*" and (submodule := _module_file([*parts, name], package_dir)) is not None:
                modules.append(submodule)
    files: list[Path] = []
    for pattern in data:
        matches = sorted(p for p in package_dir.glob(pattern) if p.is_file())
        if not matches:
            raise FileNotFoundError(f"{path}: {DATA_DECLARATION} names {pattern!r}, which matches no file under {package_dir}")
        files += matches
    return modules, files


def reachable_modules(script: Path, package_dir: Path) -> list[Path]:
    """Files of the package ``package_dir`` that running ``script`` can execute or read, sorted.

    Walks the import statements of ``script`` (anywhere in it) and, recursively, of every package
    module reached; adds each reached module's parent ``__init__.py`` files and its declared
    :data:`DATA_DECLARATION` files. ``script`` itself is not listed unless it lies in the package.

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
    seen: set[Path] = set()
    data: set[Path] = set()
    pending = [script]
    while pending:
        path = pending.pop()
        modules, files = _references(path, path.read_bytes(), package_dir)
        data.update(files)
        for module in modules:
            if module not in seen:
                seen.add(module)
                pending.append(module)
    if _package_parts(script, package_dir) is not None:
        seen.add(script)
    return sorted(seen | data)


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
