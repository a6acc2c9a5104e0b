"""The official Node SDKs (`openai`, `@anthropic-ai/sdk`), driven by node/check.mjs
against the same servers.

Skipped (with a reason `tests/sdk_clients.rs` turns into a `SKIPPED` line, which
fails `.ci/run`) when Node or `node/node_modules` is missing; `.ci/run` installs
them with `npm ci`.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import pytest

NODE_DIR = pathlib.Path(__file__).resolve().parent / "node"


def test_node_sdks(roomy, tight, slow, daily, tagged):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (NODE_DIR / "node_modules" / "openai").is_dir() or not (
        NODE_DIR / "node_modules" / "@anthropic-ai" / "sdk"
    ).is_dir():
        pytest.skip("tests/clients/node/node_modules missing: run `npm ci` there")
    env = dict(os.environ)
    env.update(
        GUARD_ROOMY=roomy.url,
        GUARD_TIGHT=tight.url,
        GUARD_SLOW=slow.url,
        GUARD_DAILY=daily.url,
        GUARD_TAGGED=tagged.url,
    )
    proc = subprocess.run(
        [node, "check.mjs"],
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    print(proc.stdout)
    assert proc.returncode == 0, f"node checks failed:\n{proc.stdout}\n{proc.stderr}"
    assert " 0 failed" in proc.stdout and "FAIL" not in proc.stdout, proc.stdout
