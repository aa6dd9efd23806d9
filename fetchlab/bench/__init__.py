"""The concurrency-mode benchmark: a grid of cells (mode x concurrency x latency) on the test bed.

Modules: :mod:`fetchlab.bench.grid` (cells, interleaved repeats in child processes, medians),
:mod:`fetchlab.bench.child` (one cell in a fresh process: wall, CPU, peak RSS),
:mod:`fetchlab.bench.exp_http` / :mod:`~fetchlab.bench.exp_cpu` / :mod:`~fetchlab.bench.exp_imap`
(the client workloads), :mod:`fetchlab.bench.sections` (which cells each section runs, at quick or
full size, and the servers they need), :mod:`fetchlab.bench.report` (results.json, Markdown, PNG
charts) and :mod:`fetchlab.bench.cli` (``scripts/bench``).

Nothing is imported here: a gevent child must be able to import this package before anything
touches ``socket`` or ``ssl``.
"""

__all__: list[str] = []
