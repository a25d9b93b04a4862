"""The agent layer: policies and backends, prompts, the batched rollout engine (see docs/agents.md).

Importing it loads nothing heavy: torch, transformers and vLLM are imported by the backends that
need them, when they are built.
"""
