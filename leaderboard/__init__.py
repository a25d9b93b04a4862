"""The leaderboard: read run directories, aggregate over seeds, and write the HTML/Markdown report.

It reads runs through ``foundation.records`` only (standard library JSON), so it never imports torch or
any of the training code. Modules, one job each: ``load`` (run directories), ``metrics`` (what each
environment reports), ``stats`` (intervals over seeds), ``aggregate`` (rows per run and strategy,
compute), ``pareto`` (frontier), ``published`` (reference rows), ``notes`` (what a run can tell),
``tables`` / ``markdown`` / ``html`` / ``svgplot`` / ``plots`` (rendering), ``report`` (the whole).
"""
