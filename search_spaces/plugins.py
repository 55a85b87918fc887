"""Plugins: a lab's own components, registered without touching the package.

A plugin is one of

- a ``.py`` file named in a spec's top-level ``plugins:`` list (path relative to the spec);
- an importable module named there (``mylab.attention``);
- an installed package's entry point in the group :data:`ENTRY_POINT_GROUP`, named there by
  its entry point name. Entry points are looked up only when a spec names one, so a broken
  package breaks only the studies that use it.

Importing the plugin registers its components with the decorators the package's own use
(``trainables.models.inserts.register_insert``, ``register_triplet``, ``register_adapter``,
timm's ``register_model`` for backbones); the registries record the plugin as each entry's
origin (:func:`search_spaces.registry.loading_plugin`).

Identity (:func:`plugin_record`): a trial that uses a plugin's component carries
``{plugin name: identity}``; a file plugin's identity is the SHA-256 of its source and of the
local ``.py`` files it imports, so editing it reruns those trials (and only those); a module
from an installed distribution counts as ``<distribution>==<version>``. Built-in components
count for nothing, so refactoring the package never invalidates stored results.

On a cluster the file plugins travel to every Ray worker in the runtime environment: the
driver stages their sources into a package folder named :data:`STAGED_PACKAGE` (Ray's
``py_modules``) and workers load them from there with :func:`load_recorded`.

Importing this module does not import torch; a plugin may.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import shutil
import signal
import sys
import threading
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

from search_spaces.registry import forget_plugin, loading_plugin
from search_spaces.sections import AUGMENT_SECTIONS, DATASETS, INSERT_SECTIONS, LOSS_SECTIONS

if TYPE_CHECKING:
    from search_spaces.trial_config import TrialConfig

ENTRY_POINT_GROUP = "reid_orchestrator.plugins"
STAGED_PACKAGE = "reid_orchestrator_plugin_files"
DIGEST_LENGTH = 16


class PluginError(ValueError):
    """A plugin that cannot be found, imported or matched; ``file``/``line`` locate the cause."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None):
        super().__init__(message)
        self.file = file
        self.line = line


@dataclass(frozen=True)
class LoadedPlugin:
    """A plugin imported in this process.

    ``name``: the module name it is imported as (a file's stem); ``identity``: ``sha256:...``
    or ``<distribution>==<version>``; ``root``: the folder a file plugin's sources are relative
    to; ``files``: those sources (the plugin and the local files it imported), relative.
    """

    name: str
    identity: str
    root: Path | None = None
    files: tuple[str, ...] = ()
    backbones: tuple[str, ...] = field(default=())

    @property
    def is_file(self) -> bool:
        return self.root is not None


_LOADED: dict[str, LoadedPlugin] = {}
# The package's own modules are never a plugin's sources, wherever the plugin file lives.
_PACKAGE_TOPS = frozenset({"search_spaces", "trainables", "orchestrator", "storage"})


def loaded_plugins() -> dict[str, LoadedPlugin]:
    return dict(_LOADED)


def unload_plugin(name: str) -> None:
    """Forget plugin ``name``: its registrations, its module and its sources' modules, so it can
    be loaded again (e.g. after an edit, in a long-lived process or a test)."""
    plugin = _LOADED.pop(name, None)
    forget_plugin(name)
    sys.modules.pop(name, None)
    for relative in plugin.files[1:] if plugin is not None else ():
        sys.modules.pop(Path(relative).with_suffix("").as_posix().replace("/", "."), None)


def is_file_reference(reference: str) -> bool:
    return reference.endswith(".py") or "/" in reference or "\\" in reference


def load_plugin(reference: str, base_dir: str | Path | None = None) -> LoadedPlugin:
    """Import the plugin ``reference`` (a ``.py`` path relative to ``base_dir``, a module name,
    or an entry point name) once per process; raise :class:`PluginError` naming file and line."""
    if is_file_reference(reference):
        path = (Path(base_dir or ".") / reference).expanduser().resolve()
        if not path.is_file():
            raise PluginError(f"plugin file not found: {path}", file=str(path))
        return _load_file(path, path.parent)
    entry_point = _entry_point(reference)
    if entry_point is not None:
        return _load_entry_point(reference, entry_point)
    return _load_module(reference)


def load_plugins(references: Iterable[str], base_dir: str | Path | None = None) -> list[LoadedPlugin]:
    return [load_plugin(reference, base_dir) for reference in references]


def _load_file(path: Path, root: Path) -> LoadedPlugin:
    name = path.stem
    held = _LOADED.get(name)
    if held is not None:
        if held.root is not None and (held.root / held.files[0]).resolve() == path:
            return held
        raise PluginError(f"two plugins are named '{name}' ({path} and {held.root or held.identity}); rename one", file=str(path))
    if not name.isidentifier():
        raise PluginError(f"plugin file name '{path.name}' is not a Python module name", file=str(path))
    before = set(sys.modules)
    if str(root) not in sys.path:
        sys.path.append(str(root))  # so the plugin can import its sibling files
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    _run_import(name, str(path), lambda: spec.loader.exec_module(module))
    local = _local_sources(set(sys.modules) - before - {name}, root)
    files = (path.relative_to(root).as_posix(), *sorted(f for f in local if f != path.relative_to(root).as_posix()))
    plugin = LoadedPlugin(name, source_identity(root, files), root, files, _new_backbones(name, files))
    _LOADED[name] = plugin
    return plugin


def _load_module(name: str) -> LoadedPlugin:
    if name in _LOADED:
        return _LOADED[name]
    found = importlib.util.find_spec(name) if name.replace(".", "").replace("_", "").isalnum() else None
    if found is None:
        raise PluginError(f"plugin '{name}' is neither a .py file, an importable module nor a '{ENTRY_POINT_GROUP}' entry point")
    before = set(sys.modules)
    _run_import(name, found.origin, lambda: importlib.import_module(name))
    distribution = _distribution_of(name)
    if distribution is not None:
        plugin = LoadedPlugin(name, distribution, backbones=_new_backbones(name, ()))
    else:  # a local module on sys.path: its sources count, as a file plugin's do
        origin = Path(found.origin or "").resolve()
        root = origin.parent.parent if origin.name == "__init__.py" else origin.parent
        files = sorted({origin.relative_to(root).as_posix(), *_local_sources(set(sys.modules) - before, root)})
        plugin = LoadedPlugin(name, source_identity(root, files), root, tuple(files), _new_backbones(name, files))
    _LOADED[name] = plugin
    return plugin


def _entry_point(name: str) -> Any:
    from importlib.metadata import entry_points

    matches = entry_points(group=ENTRY_POINT_GROUP, name=name)
    return next(iter(matches), None)


def _load_entry_point(name: str, entry_point: Any) -> LoadedPlugin:
    if name in _LOADED:
        return _LOADED[name]
    distribution = getattr(entry_point, "dist", None)
    identity = f"{distribution.name}=={distribution.version}" if distribution is not None else entry_point.value

    def run() -> None:
        loaded = entry_point.load()
        if callable(loaded) and ":" in entry_point.value:
            loaded()  # ``package.module:register`` names a function that registers

    _run_import(name, None, run)
    plugin = LoadedPlugin(name, identity, backbones=_new_backbones(entry_point.value.split(":")[0], ()))
    _LOADED[name] = plugin
    return plugin


IMPORT_TIMEOUT_ENV = "REID_ORCH_PLUGIN_TIMEOUT"
DEFAULT_IMPORT_TIMEOUT_S = 120.0  # a plugin importing torch and timm on a loaded 2-core machine takes ~20 s


def import_timeout() -> float:
    """Seconds a plugin's import may take (``orchestrator --plugin-timeout`` sets the variable); 0: no limit."""
    import os

    try:
        return max(float(os.environ.get(IMPORT_TIMEOUT_ENV, DEFAULT_IMPORT_TIMEOUT_S)), 0.0)
    except ValueError:
        return DEFAULT_IMPORT_TIMEOUT_S


class _ImportTimedOut(BaseException):
    """Raised into a plugin's import when its time is up; a BaseException, so the plugin's own
    ``except Exception`` cannot swallow it."""


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Interrupt the block after ``seconds`` with SIGALRM (main thread of a POSIX process only:
    elsewhere, e.g. in a Ray worker's thread, the import runs unbounded as before)."""
    if seconds <= 0 or not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise _ImportTimedOut()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _overwritten_backbones(caught: list[warnings.WarningMessage]) -> list[warnings.WarningMessage]:
    """timm's warning for a ``register_model`` that replaces a model of the same name (timm
    overwrites silently otherwise: ``timm.models._registry.register_model``)."""
    return [w for w in caught if str(w.message).startswith("Overwriting ") and "in registry with" in str(w.message)]


def _run_import(name: str, file: str | None, run: Any) -> None:
    """Run a plugin's import with its registrations attributed to it; a failure is one
    :class:`PluginError` at the plugin's own line (the innermost frame in its file). An import
    that exits (``sys.exit``), outlasts :func:`import_timeout` or replaces a backbone timm already
    has is refused the same way."""
    timeout = import_timeout()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with loading_plugin(name), _deadline(timeout):
                run()
    except (Exception, SystemExit, _ImportTimedOut) as err:  # noqa: BLE001 -- any failure of user code is reported, not raised
        forget_plugin(name)
        sys.modules.pop(name, None)
        where_file, where_line = _failure_place(err, file)
        if isinstance(err, _ImportTimedOut):
            message = (
                f"plugin '{name}' did not finish importing within {timeout:g} s: if its import "
                f"is legitimately slow, allow more with `orchestrator --plugin-timeout SECONDS ...` (0: no limit)"
            )
        elif isinstance(err, SystemExit):
            message = f"plugin '{name}' called sys.exit({err.code!r}) while importing: a plugin must not exit; raise an exception instead"
        else:
            detail = str(err).splitlines()[0] if str(err) else ""
            message = f"plugin '{name}' failed to import: {type(err).__name__}: {detail}".rstrip(": ")
        raise PluginError(message, where_file, where_line) from None
    _replay(caught)
    replaced = _overwritten_backbones(caught)
    if replaced:
        forget_plugin(name)
        sys.modules.pop(name, None)
        first = replaced[0]
        model = str(first.message).split()[1]
        raise PluginError(
            f"plugin '{name}' registers backbone '{model}', a name timm already has, which would silently replace it: "
            "give the plugin's model another name",
            first.filename,
            first.lineno,
        )


def _replay(caught: list[warnings.WarningMessage]) -> None:
    """Show the import's other warnings as they would have been shown."""
    for w in caught:
        if w not in _overwritten_backbones(caught):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


def _failure_place(err: BaseException, file: str | None) -> tuple[str | None, int | None]:
    """(file, line) of a failed import: the innermost frame in the plugin's own file, else the innermost."""
    if isinstance(err, SyntaxError) and err.filename:
        return err.filename, err.lineno
    frames = traceback.extract_tb(err.__traceback__)
    own = [f for f in frames if file and Path(f.filename).resolve() == Path(file).resolve()]
    chosen = own[-1] if own else (frames[-1] if frames else None)
    return (chosen.filename, chosen.lineno) if chosen is not None else (file, None)


def _local_sources(modules: set[str], root: Path) -> list[str]:
    """Files of newly imported ``modules`` that live under ``root`` (a plugin's own helpers)."""
    files = []
    for module_name in modules:
        if module_name.split(".")[0] in _PACKAGE_TOPS:
            continue
        module_file = getattr(sys.modules.get(module_name), "__file__", None)
        # A relative __file__ (torch._classes reports "_classes.py") names no file: resolving it
        # against the working folder would count a file that is not there.
        if not module_file or not Path(module_file).is_absolute():
            continue
        path = Path(module_file).resolve()
        if path.suffix == ".py" and path.is_relative_to(root) and "site-packages" not in path.parts:
            files.append(path.relative_to(root).as_posix())
    return sorted(set(files))


def source_identity(root: Path, files: Iterable[str]) -> str:
    """``sha256:<digest>`` over the files' relative paths and bytes, in sorted order."""
    digest = hashlib.sha256()
    for relative in sorted(files):
        digest.update(relative.encode("utf-8") + b"\0")
        digest.update((root / relative).read_bytes() + b"\0")
    return f"sha256:{digest.hexdigest()[:DIGEST_LENGTH]}"


def _distribution_of(module: str) -> str | None:
    """``<distribution>==<version>`` of the installed package providing ``module`` (else None)."""
    from importlib.metadata import packages_distributions, version

    top = module.split(".")[0]
    names = packages_distributions().get(top)
    if not names:
        return None
    return f"{names[0]}=={version(names[0])}"


def _new_backbones(plugin: str, files: Iterable[str]) -> tuple[str, ...]:
    """timm models the plugin registered (timm records each model's module)."""
    timm_registry = sys.modules.get("timm.models._registry")
    if timm_registry is None:
        return ()
    modules = {plugin, *(Path(f).with_suffix("").as_posix().replace("/", ".") for f in files)}
    owned = getattr(timm_registry, "_model_to_module", {})
    return tuple(sorted(model for model, module in owned.items() if module in modules or module.startswith(plugin + ".")))


def plugin_record(config: "TrialConfig") -> dict[str, str]:
    """``{plugin name: identity}`` of the plugins whose components ``config`` uses."""
    record = components_record(
        config.model.active_inserts(), config.model.backbone, config.augment.active_augmentations(), config.loss.active_terms()
    )
    origin = DATASETS.origin(config.dataset.name)  # a dataset reader a plugin registered
    if origin is not None and origin in _LOADED:
        record[origin] = _LOADED[origin].identity
    return dict(sorted(record.items()))


def components_record(
    inserts: Iterable[str], backbone: str | None = None, augmentations: Iterable[str] = (), losses: Iterable[str] = ()
) -> dict[str, str]:
    """``{plugin name: identity}`` of the plugins that registered these inserted modules,
    backbone, augmentations or loss terms (built-in components add nothing)."""
    used = {INSERT_SECTIONS.origin(name) for name in inserts if name in INSERT_SECTIONS} - {None}
    used |= {AUGMENT_SECTIONS.origin(name) for name in augmentations if name in AUGMENT_SECTIONS} - {None}
    used |= {LOSS_SECTIONS.origin(name) for name in losses if name in LOSS_SECTIONS} - {None}
    used |= {plugin.name for plugin in _LOADED.values() if backbone is not None and backbone in plugin.backbones}
    return {name: _LOADED[name].identity for name in sorted(used) if name in _LOADED}


# --- carrying plugins to other processes (Ray workers, ``python -m trainables``, checkpoints)


def stage_files(plugins: Iterable[LoadedPlugin], folder: str | Path) -> Path | None:
    """Copy the file plugins' sources into ``folder/STAGED_PACKAGE/<name>/`` (a package Ray
    ships with ``py_modules``); returns the package folder, or None without file plugins."""
    file_plugins = [p for p in plugins if p.is_file]
    if not file_plugins:
        return None
    package = Path(folder) / STAGED_PACKAGE
    if package.exists():
        shutil.rmtree(package)
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""Plugin sources shipped to Ray workers."""\n', encoding="utf-8")
    for plugin in file_plugins:
        assert plugin.root is not None
        for relative in plugin.files:
            target = package / plugin.name / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(plugin.root / relative, target)
    return package


def _staged_roots() -> list[Path]:
    found = importlib.util.find_spec(STAGED_PACKAGE) if STAGED_PACKAGE not in sys.modules else sys.modules[STAGED_PACKAGE].__spec__
    if found is None or not found.submodule_search_locations:
        return []
    return [Path(location) for location in found.submodule_search_locations]


def load_recorded(record: Mapping[str, str], search_dirs: Iterable[str | Path] = ()) -> None:
    """Load the plugins a trial's record (or a checkpoint's) names and check their identity.

    A file plugin ``name`` is looked for as ``<dir>/<name>/<name>.py`` in the staged package
    (Ray workers), then as ``<dir>/<name>.py`` in ``search_dirs``; anything else is imported
    as an entry point or module. A plugin whose identity differs is an error: the trial was
    planned with other code.
    """
    for name, identity in record.items():
        if name not in _LOADED:
            if identity.startswith("sha256:"):
                candidates = [root / name / f"{name}.py" for root in _staged_roots()]
                candidates += [Path(d) / f"{name}.py" for d in search_dirs]
                path = next((c for c in candidates if c.is_file()), None)
                if path is None:
                    where = ", ".join(str(c.parent) for c in candidates) or "nowhere"
                    raise PluginError(f"plugin '{name}' ({identity}) not found: looked for {name}.py in {where}")
                _load_file(path.resolve(), path.resolve().parent)
            else:
                load_plugin(name)
        if _LOADED[name].identity != identity:
            held = _LOADED[name]
            raise PluginError(
                f"plugin '{name}' is {held.identity} here but the trial was planned with {identity}",
                file=str(held.root / held.files[0]) if held.root else None,
            )
