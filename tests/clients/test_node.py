"""The official Node SDKs (`openai`, `@anthropic-ai/sdk`), driven by node/check.mjs
against the same servers.

Runs on the Node that `.ci/setup` installs (`node/.runtime`, the version in
`node/.node-version`), else on `node` from PATH if that is at least Node 22 (the
pinned `openai` SDK needs it). Skipped (with a reason `tests/sdk_clients.rs`
turns into a `SKIPPED` line, which fails `.ci/run`) when no such Node or
`node/node_modules` is there; `.ci/setup` installs both.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import pytest

NODE_DIR = pathlib.Path(__file__).resolve().parent / "node"


MIN_NODE_MAJOR = 22


def node_binary() -> str | None:
    """The Node to run the checks on: .ci/setup's, else PATH's if recent enough."""
    own = NODE_DIR / ".runtime" / "node_modules" / ".bin" / "node"
    candidates = [str(own)] if own.exists() else []
    on_path = shutil.which("node")
    if on_path:
        candidates.append(on_path)
    for node in candidates:
        try:
            version = subprocess.run(
                [node, "--version"], capture_output=True, text=True, timeout=30
            ).stdout.strip()
            major = int(version.lstrip("v").split(".")[0])
        except (OSError, ValueError, subprocess.SubprocessError):
            continue
        if major >= MIN_NODE_MAJOR:
            return node
    return None


def test_node_sdks(roomy, tight, slow, daily, tagged):
    node = node_binary()
    if node is None:
        pytest.skip(f"no Node >= {MIN_NODE_MAJOR}: run .ci/setup")
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
