"""ALFWorld on the real TextWorld PDDL engine: a worker pool, sessions, Gymnasium env and expert.

See docs/alfworld.md. ``spec.SPEC`` is the plugin entry point; modules that import textworld
(``engine``, ``memo``) are only imported inside worker processes.
"""
