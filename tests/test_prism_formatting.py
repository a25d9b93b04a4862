"""Trajectories as the policy saw them: prompts shared with the agents layer, targets = outputs only."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from tests.helpers.trajectories import short_prompt, short_trajectories, webshop_expert_trajectories


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from prism_train.modeling import load_tokenizer

    return load_tokenizer(tiny_model_dir)


def test_prompts_are_the_agents_prompts_token_for_token(tiny_model_dir, tokenizer):
    """The trainer's prompt for each step is what the policy sent the backend at rollout time."""
    from agents.backends.hf import TransformersBackend
    from agents.prompts import get_prompt_format
    from prism_train.formatting import PromptConfig, TrajectoryTokenizer, step_turn

    trajectory = webshop_expert_trajectories()[0]
    backend = TransformersBackend(tiny_model_dir, max_prompt_tokens=100_000)
    for style in ("react", "verl"):
        config = PromptConfig(style=style, few_shot=True, history="default", max_length=100_000)
        formatter = TrajectoryTokenizer(tokenizer, config)
        fmt = get_prompt_format("webshop", style, few_shot=True, history="default")
        for index in range(len(trajectory.steps)):
            messages = formatter.messages(trajectory, index)
            assert messages == fmt.messages(step_turn(trajectory, index))
            assert formatter.prompt_ids(messages) == backend.encode(messages)
        rows = formatter.tokenize(trajectory).rows
        assert len(rows) == len(trajectory.steps)
        for row, index in zip(rows, range(len(trajectory.steps)), strict=True):
            prompt = formatter.prompt_ids(formatter.messages(trajectory, index))
            assert row.input_ids[: len(prompt)] == prompt


def test_only_the_outputs_and_end_of_turn_are_targets(tokenizer):
    from prism_train.formatting import TrajectoryTokenizer

    trajectory = short_trajectories()[0]
    tokenized = TrajectoryTokenizer(tokenizer, short_prompt()).tokenize(trajectory)
    for row, step in zip(tokenized.rows, trajectory.steps, strict=True):
        targets = [t for t, m in zip(row.input_ids, row.target_mask, strict=True) if m]
        assert tokenizer.decode(targets) == step.action + tokenizer.eos_token
        first = row.target_mask.index(True)
        assert all(row.target_mask[first:]) and not any(row.target_mask[:first])
        assert tokenizer.decode(row.input_ids[:first]).endswith("<|im_start|>assistant\n")


def test_rollout_outputs_with_thoughts_are_the_targets(tokenizer):
    """A rollout step's raw output (thought included) is what the policy wrote, so it is the target."""
    from prism_train.formatting import TrajectoryTokenizer

    base = short_trajectories()[1]
    output = "Thought: I should look for it.\nAction: " + base.steps[0].action
    steps = [dataclasses.replace(base.steps[0], info={**base.steps[0].info, "output": output}), *base.steps[1:]]
    rows = TrajectoryTokenizer(tokenizer, short_prompt()).tokenize(dataclasses.replace(base, steps=steps)).rows
    targets = [t for t, m in zip(rows[0].input_ids, rows[0].target_mask, strict=True) if m]
    assert tokenizer.decode(targets) == output + tokenizer.eos_token
    # The next step's prompt shows that output as the assistant's earlier turn (ReAct history).
    assert output in tokenizer.decode(rows[1].input_ids)


def test_an_empty_rollout_output_is_rendered_in_the_history_as_the_policy_saw_it(tokenizer):
    """An empty generation grounded to an action: the policy's history showed "Action: <action>" (the
    prompt format's fallback), so the trainer's re-rendered prompt must too, or GRPO refuses the row
    for a prompt-length mismatch (found in the study: 545 tokens at rollout, 544 re-rendered)."""
    from agents.policy import AgentTurn, HistoryItem
    from agents.prompts import get_prompt_format
    from prism_train.formatting import TrajectoryTokenizer

    base = short_trajectories()[1]
    steps = [dataclasses.replace(base.steps[0], info={**base.steps[0].info, "output": ""}), *base.steps[1:]]
    trajectory = dataclasses.replace(base, steps=steps)
    prompt = short_prompt()
    rendered = TrajectoryTokenizer(tokenizer, prompt).messages(trajectory, 1)
    seen = get_prompt_format(trajectory.env, prompt.style, few_shot=prompt.few_shot, history=prompt.history).messages(
        AgentTurn(episode_id=trajectory.id, env=trajectory.env, task=trajectory.task,
                  observation=steps[1].observation, available_actions=steps[1].info.get("available_actions"),
                  history=[HistoryItem(steps[0].observation, steps[0].action, "")], seed=trajectory.seed,
                  info=dict(steps[1].info)))
    assert rendered == seen and any(m["content"] == f"Action: {steps[0].action}" for m in rendered)


def test_steps_longer_than_max_length_are_dropped_with_a_warning(tokenizer, caplog):
    from prism_train.formatting import PromptConfig, TrajectoryTokenizer

    trajectory = webshop_expert_trajectories()[0]
    lengths = [len(r.input_ids) for r in TrajectoryTokenizer(tokenizer, PromptConfig(max_length=10**6))
               .tokenize(trajectory).rows]
    cap = sorted(lengths)[len(lengths) // 2]
    with caplog.at_level(logging.WARNING):
        kept = TrajectoryTokenizer(tokenizer, PromptConfig(max_length=cap)).tokenize(trajectory).rows
    assert len(kept) == sum(n <= cap for n in lengths) < len(lengths)
    assert "exceed max_length" in caplog.text


def test_a_tokenizer_without_chat_template_is_refused(tokenizer):
    from prism_train.formatting import TrajectoryTokenizer

    plain = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    plain.chat_template = None
    with pytest.raises(ValueError, match="chat template"):
        TrajectoryTokenizer(plain)
