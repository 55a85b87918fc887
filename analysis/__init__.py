"""Reading a study: paired statistics, contrasts, tables, formats, figures and reports.

Everything here works from a study's stored results (the Parquet ``trials``, ``cameras`` and
``curves`` tables) and the ``report`` block of its spec, and imports only :mod:`storage` and
:mod:`search_spaces` of this project: no Ray, no torch, no MLflow. The orchestrator calls it
at the end of a launch and from ``orchestrator summarize``; a reader of results can use it
alone (``analysis.report.study_summary(study, ResultStore(uri))``).

Modules: :mod:`analysis.stats` (paired effects, intervals, Holm), :mod:`analysis.summary`
(the table's numbers), :mod:`analysis.camera_effects` (per-camera effects),
:mod:`analysis.tables` (format-neutral cells), :mod:`analysis.formats` (Markdown, LaTeX, HTML,
CSV), :mod:`analysis.figures` (PNG figures), :mod:`analysis.report` (a study's report folder),
:mod:`analysis.settings` (the spec's ``report`` block).
"""
