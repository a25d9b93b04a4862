"""The environment server images, built with this machine's podman recipe and run for real.

Marked ``containers`` (``pytest -m containers``; CI runs ``scripts/setup_containers.sh`` first). The
images are built by ``containers/build.py`` (base root and layers cached, so a rerun takes seconds);
every container started here is removed afterwards with its anonymous volumes, failing or not.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import requests

import environments  # noqa: F401 - registers the Gymnasium ids
from containers import build
from environments.core.registry import get_env_spec
from foundation.data import data_root

pytestmark = [pytest.mark.containers, pytest.mark.timeout(2400)]

REPO = Path(__file__).resolve().parents[1]
PORTS = {"webshop": 3000, "alfworld": 3001}


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    """Both environment images (built on first use, then from podman's layer cache)."""
    return build.ensure_images(["webshop", "alfworld"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*build.podman_cmd(), *args], capture_output=True, text=True, timeout=timeout, check=check)


def _wait_healthy(name: str, url: str, timeout_s: float, path: str = "/api/health") -> None:
    """Until ``path`` answers 200; fails at once (with the logs) if the container stops."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if requests.get(url + path, timeout=2).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):  # refused, or bound and still warming up
            pass
        state = _podman("container", "inspect", "--format", "{{.State.Running}}", name, check=False).stdout.strip()
        if state != "true":
            logs = _podman("logs", name, check=False)
            pytest.fail(f"container {name} stopped before serving:\n{(logs.stdout + logs.stderr)[-3000:]}")
        time.sleep(0.5)
    pytest.fail(f"container {name} did not serve {url}{path} within {timeout_s:.0f} s")


@contextmanager
def running(image: str, container_port: int, volumes: Sequence[str] = (), ready_timeout_s: float = 300) -> Iterator[
        tuple[str, str]]:
    """A container of ``image`` published on a free 127.0.0.1 port; yields (name, base URL)."""
    name = f"prism-test-{uuid.uuid4().hex[:10]}"
    port = _free_port()
    mounts = [arg for volume in volumes for arg in ("-v", volume)]
    # Health checks need systemd timers that this machine lacks; `podman healthcheck run` still works.
    _podman("run", "-d", "--name", name, "--health-interval", "disable", *build.ulimit_args(),
            "-p", f"127.0.0.1:{port}:{container_port}", *mounts, image)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(name, url, ready_timeout_s)
        yield name, url
    finally:
        _podman("rm", "--force", "--volumes", "--time", "5", name, check=False)


def _data_mount() -> str:
    return f"{data_root()}:/data:ro"


def _play_expert(env_name: str, env: gym.Env, options: dict[str, Any]) -> list[tuple[str, float, bool]]:
    """One episode of the environment's scripted expert; returns (observation, reward, terminated) per step."""
    expert = get_env_spec(env_name).make_expert()
    observation, info = env.reset(seed=11, options=options)
    expert.begin(info)
    record = [(observation, 0.0, False)]
    terminated = truncated = False
    while not (terminated or truncated):
        action = expert.act(observation, info)
        assert action is not None, "the expert gave up"
        observation, reward, terminated, truncated, info = env.step(action)
        record.append((observation, float(reward), bool(terminated)))
    return record


@pytest.mark.parametrize(("env_name", "options"), [
    ("webshop", {"goal_index": 7}),
    ("alfworld", {"split": "valid_unseen", "index": 3}),
])
def test_image_serves_the_gym_client_like_in_process(images, env_name, options):
    with running(images[env_name], PORTS[env_name], [_data_mount()]) as (name, url):
        health = requests.get(url + "/api/health", timeout=10).json()
        assert health["status"] == "ok" and health["env"] == env_name
        assert _podman("healthcheck", "run", name, check=False).returncode == 0  # the image's HEALTHCHECK
        remote = gym.make(get_env_spec(env_name).gym_id, server_url=url)
        try:
            over_http = _play_expert(env_name, remote, options)
        finally:
            remote.close()
    local = gym.make(get_env_spec(env_name).gym_id)
    try:
        in_process = _play_expert(env_name, local, options)
    finally:
        local.close()
    assert over_http == in_process
    assert over_http[-1][1] == 1.0 and over_http[-1][2]  # the expert won through the container


def test_webshop_image_passes_the_gymnasium_checker(images):
    from gymnasium.utils.env_checker import check_env

    with running(images["webshop"], PORTS["webshop"], [_data_mount()]) as (_, url):
        env = gym.make("harness/WebShop-v0", server_url=url)
        try:
            check_env(env.unwrapped, skip_render_check=True)
        finally:
            env.close()


def test_images_hold_no_data_run_unprivileged_and_mount_data_read_only(images):
    for image in images.values():
        result = _podman("run", "--rm", *build.ulimit_args(), image, "sh", "-c", "id -u; ls -A /data | wc -l")
        assert result.stdout.split() == ["1000", "0"], result.stdout  # not root, and nothing baked into /data
    with running(images["webshop"], PORTS["webshop"], [_data_mount()]) as (name, _):
        write = _podman("exec", name, "touch", "/data/webshop/written-by-a-container", check=False)
        assert write.returncode != 0 and "Read-only file system" in write.stderr
        begun = time.monotonic()
        _podman("stop", "--time", "20", name)
        assert time.monotonic() - begun < 10  # tini forwards SIGTERM: no wait for the kill timeout


def test_base_image_and_layers_are_cached(images):
    recipe = build.BaseRecipe(mirror=build.apt_mirror())
    assert recipe.tarball.is_file() and recipe.tarball.is_relative_to(build.cache_dir())
    assert build.image_exists(recipe.tag)
    begun = time.monotonic()
    assert build.ensure_images(["webshop"]) == {"webshop": images["webshop"]}
    assert time.monotonic() - begun < 120  # no debootstrap, no dependency layer: at most the code layer


def test_server_pool_over_two_containers_survives_one_being_killed(images, tmp_path):
    from agents.rollout import RolloutConfig, RolloutEngine
    from agents.scripted import RandomPolicy
    from agents.tasks import plan_episodes, split_tasks
    from harness.distributed import make_server_pool_provider
    from tests.helpers.rollouts import KillingWriter, by_id, content

    plan = plan_episodes("webshop", split_tasks("webshop", "test", limit=12), "random", seed=5)
    config = RolloutConfig(env="webshop", concurrency=4, progress=False)
    local, _ = RolloutEngine(RandomPolicy(seed=2), config).run(plan)
    out = tmp_path / "trajectories.jsonl"
    with running(images["webshop"], PORTS["webshop"], [_data_mount()]) as (_, url_a), \
            running(images["webshop"], PORTS["webshop"], [_data_mount()]) as (name_b, url_b):
        with make_server_pool_provider([url_a, url_b], "webshop") as provider:
            writer = KillingWriter(out, lambda: _podman("kill", name_b), after=3)
            with writer:
                _, stats = RolloutEngine(RandomPolicy(seed=2), config, make_env=provider).run(plan, writer)
            described = provider.describe()
    assert writer.written_before_kill == 3 and described["recoveries"] >= 1
    assert [server["alive"] for server in described["servers"]] == [True, False]
    assert stats.episodes == 12 and stats.failed == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 12 and {line["id"]: content(line) for line in lines} == by_id(local)


@pytest.fixture(scope="module")
def vllm_image() -> str:
    """The CPU vLLM image (3.9 GB; built once, then cached)."""
    return build.ensure_images(["vllm"])["vllm"]


def test_compose_starts_both_environment_servers_and_vllm(images, vllm_image, varied_tiny_model_dir, tmp_path):
    assert shutil.which("podman-compose"), "podman-compose is missing: run scripts/setup_containers.sh"
    model = tmp_path / "model"  # readable by the image's unprivileged user (pytest's temp files are private)
    shutil.copytree(varied_tiny_model_dir, model)
    for path in [model, *model.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    ports = {name: str(_free_port()) for name in ("WEBSHOP_PORT", "ALFWORLD_PORT", "VLLM_PORT")}
    project = f"prism-test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, **ports, "HARNESS_DATA_DIR": str(data_root()), "MODEL_DIR": str(model)}
    compose = ["podman-compose", "--podman-args", f"--runtime {build.runtime()}", "-p", project,
               "-f", str(REPO / "containers" / "compose.yaml")]
    try:
        up = subprocess.run([*compose, "up", "-d", "--no-build"], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        for env_name, variable in (("webshop", "WEBSHOP_PORT"), ("alfworld", "ALFWORLD_PORT")):
            url = f"http://127.0.0.1:{ports[variable]}"
            _wait_healthy(f"{project}_{env_name}_1", url, 300)
            client = gym.make(get_env_spec(env_name).gym_id, server_url=url)
            try:
                observation, _ = client.reset(seed=0)
                assert observation
            finally:
                client.close()
        vllm = f"http://127.0.0.1:{ports['VLLM_PORT']}"
        _wait_healthy(f"{project}_vllm_1", vllm, 600, path="/health")
        answer = requests.post(vllm + "/v1/completions", timeout=120, json={
            "model": "model", "prompt": "search[", "max_tokens": 6, "temperature": 0, "logprobs": 1}).json()
        choice = answer["choices"][0]
        assert choice["text"] and len(choice["logprobs"]["token_logprobs"]) == 6, answer
    finally:
        subprocess.run([*compose, "down", "-v"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    leftover = _podman("ps", "-a", "--filter", f"name={project}", "--format", "{{.Names}}").stdout.split()
    assert leftover == []
