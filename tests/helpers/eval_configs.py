"""The smallest `harness eval` config that still exercises every phase (the pipeline, Ray and container tests)."""

TINY = {
    "name": "tiny-test",
    "envs": [{"name": "webshop", "train_split": "train", "train_tasks": 4, "eval_splits": ["test"],
              "eval_episodes": 2, "max_steps": 3}],
    "strategies": ["sft-only", "random", "prism-gini"],
    "seeds": [0],
    "model": {"source": "tiny", "tiny_hidden_size": 32, "tiny_vocab_size": 512, "max_new_tokens": 8},
    "sft": {"epochs": 1, "micro_batch_size": 4},
    "rl": {"iterations": 1, "tasks_per_iteration": 1, "group_size": 2},
    "torch_threads": 1,
    "rollout_concurrency": 4,
}
