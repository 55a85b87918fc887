"""The study spec: one YAML file describing a whole ablation study.

``load_spec`` parses the file, validates it with pydantic (``extra="forbid"`` everywhere),
expands it into trials and reports the first problem as a :class:`SpecError` naming the file,
line and dotted key. Nothing here imports torch or starts Ray.

Relative paths in the spec (dataset roots, output folders) are resolved against the current
working directory, like any command-line tool; the files of ``plugins:`` are the exception:
they are relative to the spec, which usually sits beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from analysis.settings import Report
from orchestrator.errors import SpecError
from orchestrator.redact import has_credentials, redact_uri
from orchestrator.yaml_source import YamlSource, YamlSyntaxError, load_yaml
from search_spaces import AblationSpec, ChangeError, DesignError, PlannedTrial, Recipe, expand
from search_spaces.designs import DEFAULT_ABLATION
from search_spaces.trial_config import schedule_problem
from search_spaces.plugins import LoadedPlugin, PluginError, load_plugin

STUDY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
STUDY_NAME_MAX = 100


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StudyInfo(_Block):
    """``study:`` — the study's identity and the metric it is judged by."""

    name: str = Field(pattern=STUDY_NAME_PATTERN, description=f"Letters, digits, '_', '.', '-'; at most {STUDY_NAME_MAX} characters.")
    description: str = ""
    metric: Literal["mAP", "rank1"] = "mAP"

    @field_validator("name")
    @classmethod
    def _fits_in_file_names(cls, name: str) -> str:
        # Folders and files are named after the study with a suffix (Ray's "<name>-<date>-<time>",
        # the lock's ".<name>.stale-<nonce>"), and a file name holds 255 bytes: a longer name would
        # fail half-way through a launch, after the study folder is written.
        if len(name) > STUDY_NAME_MAX:
            raise ValueError(
                f"a study name has at most {STUDY_NAME_MAX} characters (file and folder names are built from it), got {len(name)}: shorten it"
            )
        return name


class Resources(_Block):
    """``resources:`` — what each trial gets from Ray, and how failures are retried."""

    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(0.0, ge=0, description="Fractions pack several trials per GPU.")
    max_concurrent_trials: int | None = Field(None, ge=1)
    retries: int = Field(
        2,
        ge=0,
        description="Times a failed trial is started again (from its last checkpoint) before it is recorded "
        "failed: a lost node or worker counts as a failure, as an error in the trial does.",
    )
    checkpoint_every: int = Field(
        5,
        ge=0,
        description="Epochs between a trial's checkpoints in Ray Tune's storage (0: none); a trial started "
        "again after a failure resumes from its last one, re-running at most this many epochs.",
    )


class Output(_Block):
    """``output:`` — where results land. Defaults keep everything in ``studies/<name>/``."""

    dir: str | None = Field(None, description="Study folder; default studies/<study name>.")
    store: str | None = Field(None, description="Parquet result store: a folder or s3://bucket/prefix.")
    tracking_uri: str | None = Field(None, description="MLflow tracking URI; default a SQLite file in the study folder.")
    checkpoints: str | None = Field(
        None,
        description="Folder (on a cluster: one every node can write, e.g. a shared volume) where each "
        "trial's final model is saved as <config hash>.pt, loadable with trainables.models.checkpoint.load_checkpoint. "
        "Default: none, except <dir>/checkpoints when a variant 'continues' another (it starts from its parent's model).",
    )

    @field_validator("checkpoints")
    @classmethod
    def _checkpoints_in_a_folder(cls, path: str | None) -> str | None:
        if path is not None and "://" in path:
            raise ValueError(f"checkpoints go to a folder (a shared volume on a cluster), got {path}")
        return path

    @field_validator("store", "tracking_uri")
    @classmethod
    def _no_credentials_in_files(cls, uri: str | None) -> str | None:
        # A spec is copied into the study folder and shown in logs: secrets stay in the environment.
        if uri is not None and has_credentials(uri):
            raise ValueError(
                f"{redact_uri(uri)} embeds a credential; keep it out of the spec: use "
                "MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or AWS_* environment variables"
            )
        return uri


class StudySpec(_Block):
    """The whole file."""

    plugins: tuple[str, ...] = Field(
        (),
        description="Plugins to load before the rest is validated: .py files (relative to the spec), "
        "module names, or names of installed 'reid_orchestrator.plugins' entry points.",
    )
    study: StudyInfo
    baseline: Recipe = Recipe()
    ablation: AblationSpec = DEFAULT_ABLATION
    resources: Resources = Resources()
    output: Output = Output()
    report: Report = Report()

    def study_dir(self) -> Path:
        return Path(self.output.dir or Path("studies") / self.study.name).resolve()

    def store_uri(self) -> str:
        return self.output.store or str(self.study_dir() / "results")


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec, its source and its expanded trials."""

    spec: StudySpec
    source: YamlSource
    trials: list[PlannedTrial]
    plugins: tuple[LoadedPlugin, ...] = ()

    @property
    def name(self) -> str:
        return self.spec.study.name


def _dotted(key_path: tuple[Any, ...]) -> str:
    text = ""
    for part in key_path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif "." in str(part):  # a dotted axis name used as a key
            text += f"['{part}']"
        else:
            text += f".{part}" if text else str(part)
    return text


def spec_error(source: YamlSource, key_path: tuple[Any, ...], message: str) -> SpecError:
    """A :class:`SpecError` located at ``key_path`` of ``source``, or at the command-line
    override that set it (:mod:`orchestrator.overrides`)."""
    override = source.override_for(key_path)
    if override is not None:
        return SpecError(message, file=f"override '{override}'", key=_dotted(key_path) or None)
    if source.overrides:
        message += f" (in {source.path} with the overrides {' '.join(source.overrides.values())})"
    return SpecError(message, file=str(source.path), line=source.line_of(key_path), key=_dotted(key_path) or None)


def _first_validation_error(source: YamlSource, err: ValidationError) -> SpecError:
    first = err.errors()[0]
    loc = tuple(first["loc"])
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = f"unknown key '{loc[-1]}'" + _plugin_hint(loc)
    elif first["type"] == "missing":
        message = "required key is missing"
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return spec_error(source, loc, message)


def _plugin_hint(loc: tuple[Any, ...]) -> str:
    """For an unknown key right under a recipe section (``model.se``): the built-in key it
    resembles, or else that plugins add such sections (an insert named N gets ``model.N``) only
    when the spec lists them."""
    import difflib

    from search_spaces.trial_config import section_fields

    if not (len(loc) == 3 and loc[0] == "baseline" and loc[1] in Recipe.model_fields):
        return ""
    section = Recipe.model_fields[loc[1]].annotation
    known = sorted(section_fields(section)) if isinstance(section, type) and issubclass(section, BaseModel) else []
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    if close:
        return f"; did you mean '{loc[1]}.{close[0]}'?"
    return f"; if '{loc[-1]}' is a plugin's section, list the plugin under the spec's top-level plugins:"


def load_spec_plugins(source: YamlSource, base_dir: Path | None = None) -> tuple[LoadedPlugin, ...]:
    """Import the plugins the spec's ``plugins:`` names (relative to the spec's folder, or to
    ``base_dir``): their components must be registered before the rest is validated. A plugin
    that is missing or fails to import is a :class:`SpecError` at the plugin's own file and
    line (or at the spec's ``plugins:`` item when the file is missing)."""
    references = source.data.get("plugins") or []
    if not isinstance(references, list) or not all(isinstance(r, str) for r in references):
        raise spec_error(source, ("plugins",), "plugins is a list of .py files, module names or entry point names")
    folder = base_dir or source.path.resolve().parent
    loaded = []
    for index, reference in enumerate(references):
        try:
            loaded.append(load_plugin(reference, folder))
        except PluginError as err:
            if err.line is None:
                raise spec_error(source, ("plugins", index), str(err)) from None
            raise SpecError(str(err), file=err.file, line=err.line) from None
    return tuple(loaded)


def parse_spec(source: YamlSource, plugin_dir: Path | None = None, *, max_trials: int | None = None) -> LoadedSpec:
    """Validate parsed YAML and expand it; raise :class:`SpecError` on the first problem.
    ``max_trials``: refuse a study planning more trials, counted before expanding it."""
    from orchestrator.study_size import check_study_size

    plugins = load_spec_plugins(source, plugin_dir)
    try:
        spec = StudySpec.model_validate(source.data)
    except ValidationError as err:
        raise _first_validation_error(source, err) from None
    check_study_size(str(source.path), source.line_of(("ablation",)), spec.ablation, max_trials)
    try:
        trials = expand(spec.baseline, spec.ablation)
    except (ChangeError, DesignError) as err:
        raise spec_error(source, err.origin, str(err)) from None
    _check_schedules(source, spec, trials)
    _check_reference_rows(source, spec, trials)
    _check_target_columns(source, spec, trials)
    trials = _adaptive_trials(source, spec, trials)
    return LoadedSpec(spec, source, trials, plugins)


def _adaptive_trials(source: YamlSource, spec: StudySpec, trials: list[PlannedTrial]) -> list[PlannedTrial]:
    """With ``ablation.adaptive``: the first wave's trials, each carrying the seed schedule
    (search_spaces.adaptive); a block that cannot work is refused at its key."""
    from search_spaces.adaptive import adaptive_meta, adaptive_problem, seed_schedule, with_meta

    adaptive = spec.ablation.adaptive
    if adaptive is None:
        return trials
    compared = len({t.variant for t in trials if t.contrast is not None})
    problem = adaptive_problem(spec.ablation.seeds, adaptive, spec.ablation.design, compared)
    if problem is not None:
        key, message = problem
        raise spec_error(source, ("ablation", "adaptive", *([key] if key else [])), message)
    return with_meta(trials, adaptive_meta(seed_schedule(spec.ablation.seeds, adaptive), adaptive, spec.study.metric))


def _check_schedules(source: YamlSource, spec: StudySpec, trials: list[PlannedTrial]) -> None:
    """Refuse decay steps or warm-up beyond the epochs, in the baseline or in any variant."""
    problem = schedule_problem(spec.baseline.train)
    if problem:
        raise spec_error(source, ("baseline", "train"), problem)
    for trial in trials:
        problem = schedule_problem(trial.config.train)
        if problem:
            raise spec_error(source, ("ablation",), f"variant '{trial.variant}': {problem}")


def _check_reference_rows(source: YamlSource, spec: StudySpec, trials: list[PlannedTrial]) -> None:
    """A reference row must name a variant of the study (search designs name theirs at run time)."""
    reference = spec.report.reference
    if reference is None or spec.ablation.design == "optuna":
        return
    variants = {trial.variant for trial in trials}
    for name in reference.rows:
        if name not in variants:
            raise spec_error(
                source,
                ("report", "reference", "rows", name),
                f"reference row '{name}' matches no variant of this study; variants: {', '.join(sorted(variants))}",
            )


def _check_target_columns(source: YamlSource, spec: StudySpec, trials: list[PlannedTrial]) -> None:
    """A table column of an evaluation target (``duke/mAP``) must name a target of the study."""
    from search_spaces.metrics import split_target_metric

    labels = {target.label for config in [spec.baseline, *(t.config for t in trials)] for target in config.eval.targets}
    columns = [(("report", "metrics", i), name) for i, name in enumerate(spec.report.metrics)]
    if spec.report.reference is not None:
        columns += [
            (("report", "reference", "rows", row, name), name) for row, values in spec.report.reference.rows.items() for name in values
        ]
    for origin, name in columns:
        label, _ = split_target_metric(name)
        if label is not None and label not in labels:
            known = f"its targets: {', '.join(sorted(labels))}" if labels else "it has no eval.targets"
            raise spec_error(
                source, origin, f"column '{name}' is of evaluation target '{label}', which this study does not evaluate ({known})"
            )


def load_spec(
    path: str | Path, plugin_dir: str | Path | None = None, *, max_trials: int | None = None, overrides: Sequence[str] = ()
) -> LoadedSpec:
    """Read, validate and expand the spec at ``path``; its file plugins are relative to its
    folder, or to ``plugin_dir`` (a copy of the spec in a study folder). ``overrides`` are
    ``key=value`` texts set into the spec before it is validated (:mod:`orchestrator.overrides`).
    See :func:`parse_spec` for ``max_trials``."""
    from orchestrator.overrides import apply_overrides

    try:
        source = load_yaml(path)
    except YamlSyntaxError as err:
        raise SpecError(str(err), file=str(path), line=err.line) from None
    return parse_spec(apply_overrides(source, overrides), Path(plugin_dir) if plugin_dir else None, max_trials=max_trials)
