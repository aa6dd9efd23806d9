"""The concurrency-mode benchmark: a grid of cells (mode x concurrency x latency) on the test bed.

Modules: :mod:`modes.bench.grid` (cells, interleaved repeats in child processes, medians),
:mod:`modes.bench.child` (one cell in a fresh process: wall, CPU, peak RSS),
:mod:`modes.bench.exp_http` / :mod:`~modes.bench.exp_cpu` / :mod:`~modes.bench.exp_imap` (the
client workloads), :mod:`modes.bench.sections` (which cells each section runs, at quick or full
size, and the servers they need), :mod:`modes.bench.report` (results.json, Markdown, PNG charts)
and :mod:`modes.bench.cli` (``scripts/bench``).

Nothing is imported here: a gevent child must be able to import this package before anything
touches ``socket`` or ``ssl``.
"""

__all__: list[str] = []
