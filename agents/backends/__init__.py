"""Inference backends behind :class:`agents.policy.LMBackend`: transformers in-process, vLLM in-process,
and any OpenAI-compatible server (vLLM's, ours, or another). Each module imports its engine lazily.
"""
