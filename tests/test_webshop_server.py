"""The WebShop engine behind the real server (waitress on 127.0.0.1, port 0): API errors, session
limits, identical in-process and remote trajectories, and the human shop's pages over plain HTTP."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest
import requests

from environments.core.client import EnvServerError, RemoteSession
from environments.core.engine import InvalidOptionsError, SessionStateError
from environments.core.server import RunningServer, ServerSettings, create_app
from environments.webshop.spec import SPEC

SHIRT_GOAL = 580
SHIRT_QUERY = "amazon essentials men's slim-fit long-sleeve solid pocket oxford shirt"
TRAJECTORY = [
    "search[decorative pillows]",
    "click[next >]",
    "click[nothing here]",
    "click[< prev]",
    f"search[{SHIRT_QUERY}]",
    "click[b07f2g93bj]",
    "click[lavender]",
    "click[description]",
    "click[< prev]",
    "click[x-small]",
    "look",
    "click[features]",
    "click[< prev]",
    "click[buy now]",
]


def start(settings: ServerSettings, **factory_options) -> RunningServer:
    factory = SPEC.make_factory(**factory_options)
    return RunningServer(create_app("webshop", factory, settings, SPEC.blueprints(factory)), settings).start()


@pytest.fixture(scope="module")
def server():
    running = start(ServerSettings(port=0, max_sessions=16, threads=8, max_request_bytes=16 * 1024))
    yield running
    running.stop()


def api(server, path: str) -> str:
    return f"{server.url}/api{path}"


def error_type(response: requests.Response, status: int) -> str:
    assert response.status_code == status, response.text
    return response.json()["error"]["type"]


def assert_healthy(server) -> None:
    health = requests.get(api(server, "/health"), timeout=10).json()
    assert health["status"] == "ok" and health["env"] == "webshop"
    assert health["engine"]["products"] == 1000 and health["engine"]["goals"] == 6910


def normalised(value):
    return json.loads(json.dumps(value))


def test_health(server):
    assert_healthy(server)


def test_remote_trajectory_equals_in_process(server):
    local = SPEC.make_factory().new_session()
    remote = RemoteSession(server.url)
    try:
        local_first = local.reset({"goal_index": SHIRT_GOAL})
        remote_first = remote.reset({"goal_index": SHIRT_GOAL})
        assert normalised(local_first) == normalised(remote_first)
        for action in TRAJECTORY:
            mine, theirs = local.step(action), remote.step(action)
            assert normalised(mine.to_json()) == theirs.to_json(), action
        assert theirs.terminated and theirs.reward == 1.0
        assert remote.observation() == local.observation()
        with pytest.raises(SessionStateError):
            remote.step("click[buy now]")
        with pytest.raises(InvalidOptionsError, match="goal_index"):
            remote.reset({"goal_index": 10**6})
        assert remote.reset({"goal_index": 3})[1]["goal"]["index"] == 3
        assert remote.available_actions() == local.reset({"goal_index": 3})[1]["available_actions"]
    finally:
        remote.close()


def test_api_errors_leave_the_server_serving(server):
    created = requests.post(api(server, "/sessions"), json={"reset": {"goal_index": 0}}, timeout=10)
    assert created.status_code == 201
    session_id = created.json()["session_id"]
    step = api(server, f"/sessions/{session_id}/step")

    bad_json = requests.post(step, data="{not json", headers={"Content-Type": "application/json"}, timeout=10)
    assert error_type(bad_json, 400) == "malformed_json"
    assert_healthy(server)

    assert error_type(requests.post(step, json={"action": 42}, timeout=10), 400) == "bad_action"
    assert error_type(requests.post(step, json={"action": ["click[x]"]}, timeout=10), 400) == "bad_action"
    assert error_type(requests.post(step, json={}, timeout=10), 400) == "bad_request"
    assert_healthy(server)

    strict = requests.post(step, json={"action": "click[not a button]", "strict": True}, timeout=10)
    assert error_type(strict, 422) == "invalid_action"
    lenient = requests.post(step, json={"action": "click[not a button]"}, timeout=10).json()
    assert lenient["info"]["action_valid"] is False and lenient["reward"] == 0.0
    assert_healthy(server)

    too_big = requests.post(step, json={"action": "search[" + "x" * 40_000 + "]"}, timeout=10)
    assert too_big.status_code == 413
    assert_healthy(server)

    bad_reset = requests.post(
        api(server, f"/sessions/{session_id}/reset"), json={"options": {"split": "nope"}}, timeout=10
    )
    assert error_type(bad_reset, 400) == "invalid_options"
    unknown = requests.post(api(server, "/sessions/no-such-session/step"), json={"action": "search[x]"}, timeout=10)
    assert error_type(unknown, 404) == "unknown_session"

    # The session still works after all of that.
    ok = requests.post(step, json={"action": "search[shorts]", "strict": True}, timeout=10)
    assert ok.status_code == 200 and ok.json()["info"]["action_valid"]

    assert requests.delete(api(server, f"/sessions/{session_id}"), timeout=10).status_code == 200
    assert error_type(requests.post(step, json={"action": "search[x]"}, timeout=10), 410) == "unknown_session"
    assert (
        error_type(requests.get(api(server, f"/sessions/{session_id}/observation"), timeout=10), 410)
        == "unknown_session"
    )
    assert_healthy(server)


def test_step_after_purchase_is_a_conflict(server):
    created = requests.post(api(server, "/sessions"), json={"reset": {"goal_index": SHIRT_GOAL}}, timeout=10).json()
    step = api(server, f"/sessions/{created['session_id']}/step")
    for action in (f"search[{SHIRT_QUERY}]", "click[b07f2g93bj]", "click[buy now]"):
        assert requests.post(step, json={"action": action, "strict": True}, timeout=10).status_code == 200
    assert error_type(requests.post(step, json={"action": "click[< prev]"}, timeout=10), 409) == "bad_state"
    requests.delete(api(server, f"/sessions/{created['session_id']}"), timeout=10)


def test_session_cap_and_idle_expiry():
    running = start(ServerSettings(port=0, max_sessions=2, idle_timeout_s=1.5, threads=4))
    try:
        first = RemoteSession(running.url)
        second = RemoteSession(running.url)
        full = requests.post(f"{running.url}/api/sessions", json={}, timeout=10)
        assert error_type(full, 429) == "too_many_sessions"
        with pytest.raises(EnvServerError) as excinfo:
            RemoteSession(running.url)
        assert excinfo.value.status == 429
        assert requests.get(f"{running.url}/api/health", timeout=10).json()["sessions"] == 2

        # Idle sessions expire (410, with the reason) and free their slots. Polling /health does
        # not touch the sessions, so they stay idle while we wait.
        deadline = time.monotonic() + 10
        while requests.get(f"{running.url}/api/health", timeout=10).json()["sessions"] and time.monotonic() < deadline:
            time.sleep(0.1)
        response = requests.get(f"{running.url}/api/sessions/{first.session_id}/observation", timeout=10)
        assert error_type(response, 410) == "unknown_session"
        assert "expired" in response.json()["error"]["message"]
        third = RemoteSession(running.url)
        assert third.reset({"goal_index": 1})[0].startswith("WebShop")
        for session in (first, second, third):
            session.close()
    finally:
        running.stop()


def test_human_shop_pages_over_http(server):
    http = requests.Session()
    start_page = http.get(f"{server.url}/", params={"goal_index": SHIRT_GOAL}, timeout=10)
    assert start_page.status_code == 200 and "<h2>WebShop</h2>" in start_page.text
    session_id = start_page.url.rstrip("/").rsplit("/", 1)[-1]
    act = f"{server.url}/act/{session_id}"

    results = http.post(act, data={"search_query": SHIRT_QUERY}, timeout=10)
    assert re.search(rf"/search_results/{session_id}/amazon\+essentials", results.url)
    assert "B07F2G93BJ" in results.text
    item = http.get(act, params={"action": "click[b07f2g93bj]"}, timeout=10)
    assert f"/item_page/{session_id}/B07F2G93BJ/" in item.url and 'type="radio"' in item.text
    for value in ("lavender", "x-small"):
        item = http.post(act, data={"action": f"click[{value}]"}, timeout=10)
    assert re.search(r'value="lavender"[^>]*checked', item.text)
    done = http.post(act, data={"action": "click[buy now]"}, timeout=10)
    assert f"/done/{session_id}/B07F2G93BJ" in done.url
    assert "Your score (min 0.0, max 1.0)<pre>1.0</pre>" in done.text

    # The agent API sees the same session, finished.
    observation = http.get(api(server, f"/sessions/{session_id}/observation"), timeout=10).json()["observation"]
    assert "Your score (min 0.0, max 1.0) [SEP] 1.0 [SEP] Reward Details" in observation

    assert http.get(f"{server.url}/search_results/no-such-session/x/1", timeout=10).status_code == 404
    assert http.get(f"{server.url}/", params={"goal_index": "many"}, timeout=10).status_code == 400
    http.delete(api(server, f"/sessions/{session_id}"), timeout=10)


def test_noun_tagger_loads_without_torch_and_tags_the_same():
    """A server process that never imports torch keeps ~230 MiB off its RSS; the tags must not change."""
    from environments.webshop.catalogue import load_catalogue

    names = json.dumps([product.title for product in load_catalogue().products[:40]])
    script = (
        "import json, sys\n"
        "if sys.argv[1] == 'torch-first': import torch  # as in a training process\n"
        "from environments.webshop.nouns import get_noun_tagger\n"
        "tagger = get_noun_tagger()\n"
        "import thinc.compat  # after the tagger: importing thinc first would import torch\n"
        "nouns = [tagger.nouns(n) for n in json.loads(sys.stdin.read())]\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'thinc_torch': thinc.compat.has_torch, 'nouns': nouns}))\n"
    )
    runs = {}
    for mode in ("alone", "torch-first"):
        done = subprocess.run([sys.executable, "-c", script, mode], input=names, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        runs[mode] = json.loads(done.stdout)
    assert (runs["alone"]["torch"], runs["alone"]["thinc_torch"]) == (False, False)
    assert (runs["torch-first"]["torch"], runs["torch-first"]["thinc_torch"]) == (True, True)
    assert runs["alone"]["nouns"] == runs["torch-first"]["nouns"]
