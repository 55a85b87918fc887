"""Ready-made studies, one per paper, plus the quickstart (``orchestrator/presets/*.yaml``).

Each preset is a complete spec. Those for real datasets name the placeholder root
``/path/to/Market-1501`` (and an evaluation target's ``/path/to/DukeMTMC-reID``);
:func:`preset_text` swaps in the user's folders so the preset runs as it is. ``examples/`` in the repository points at the same files.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.errors import InputError

PRESET_DIR = Path(__file__).resolve().parent / "presets"
DATASET_PLACEHOLDER = "/path/to/Market-1501"
TARGET_PLACEHOLDER = "/path/to/DukeMTMC-reID"  # an eval.targets root (cross-dataset presets)


def list_presets() -> dict[str, str]:
    """Preset name -> its one-line description (the first comment line)."""
    presets = {}
    for path in sorted(PRESET_DIR.glob("*.yaml")):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        presets[path.stem] = first.lstrip("# ").strip()
    return presets


def preset_path(name: str) -> Path:
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        raise InputError(f"unknown preset '{name}'; presets: {', '.join(list_presets())}")
    return path


def preset_text(name: str, dataset_root: str | None = None, target_root: str | None = None) -> str:
    """The preset's YAML, with the dataset placeholder replaced by ``dataset_root`` and the
    evaluation target's by ``target_root``, where given."""
    text = preset_path(name).read_text(encoding="utf-8")
    for placeholder, root in ((DATASET_PLACEHOLDER, dataset_root), (TARGET_PLACEHOLDER, target_root)):
        if root is not None:
            text = text.replace(placeholder, str(Path(root).expanduser().resolve()))
    return text
