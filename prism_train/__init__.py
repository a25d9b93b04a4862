"""Training side of the harness: the PRISM probe, routing strategies, SFT and GRPO trainers, compute ledger.

Modules, in the order data flows through them:

- :mod:`prism_train.formatting`: a trajectory as the policy saw it (the agents' prompts), token rows
- :mod:`prism_train.probe`: per-trajectory gradient norms of every projection (batched Gram trick)
- :mod:`prism_train.routers`: routing strategies as ``harness.routers`` plugins
- :mod:`prism_train.sft`, :mod:`prism_train.rl`: the trainers (:mod:`prism_train.trainer` is shared)
- :mod:`prism_train.ledger`, :mod:`prism_train.flops`: compute accounting (torch-free)

Importing the package imports nothing heavy; torch is loaded by the modules that need it.
"""
