"""The README's inspector walkthrough, run as written (with its paths moved to a temp dir)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_readme_walkthrough_proves_a_case(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## An inspector's walkthrough", 1)[1]
    script = re.search(r"```bash\n(.*?)```", section, re.S)
    assert script is not None
    port = str(_free_port())
    text = (
        script.group(1)
        .replace("/tmp/", f"{tmp_path}/")
        .replace("7390", port)
        .replace(
            "python3 ledger/verify_bundle.py", f"{sys.executable} {tmp_path}/vb/verify_bundle.py"
        )
    )
    (tmp_path / "vb").mkdir()
    shutil.copy(ROOT / "ledger" / "verify_bundle.py", tmp_path / "vb")
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    wrapped = "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + text.replace(
        " &\n",
        f" &\nfor _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null"
        " && break; sleep 0.2; done\n",
        1,
    )
    result = subprocess.run(
        ["bash", "-c", wrapped],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "VERDICT: PASS" in result.stdout
    assert "PASS  cosignatures" in result.stdout
