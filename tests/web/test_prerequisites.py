"""Browser tests fail, naming the command that installs what they lack; they never skip.

Each case runs pytest in a subprocess on one browser test with something taken away: Chromium
(``DISCO_CHROMIUM`` at a missing path), the built web app (``DISCO_WEB_DIR`` at an empty folder)
or playwright (a stand-in package on ``PYTHONPATH`` that fails to import).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# a quick test that needs the browser and the server
ONE_BROWSER_TEST = "tests/web/test_ui_pages.py::test_deep_link_and_unknown_task"

pytestmark = pytest.mark.timeout(120)


def _pytest(tmp_path: Path, **env: str) -> tuple[int, str]:
    """Run ONE_BROWSER_TEST with `env` added; exit status and everything it printed."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", ONE_BROWSER_TEST],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=110,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_missing_chromium_and_web_build_fail_with_the_commands_that_fix_them(
    tmp_path: Path,
) -> None:
    chromium = tmp_path / "no-such-dir" / "chromium"
    code, out = _pytest(tmp_path, DISCO_CHROMIUM=str(chromium), DISCO_WEB_DIR=str(tmp_path))
    assert code != 0, out
    assert f"Chromium not found at {chromium}" in out, out
    assert "`apt-get install -y chromium`" in out and ".ci/run" in out, out
    assert f"the web app is not built ({tmp_path / 'index.html'} is missing)" in out, out
    assert "run `make web`" in out, out
    assert "1 error" in out and "skipped" not in out, out


def test_missing_playwright_fails_the_folder_with_the_command_that_installs_it(
    tmp_path: Path,
) -> None:
    fake = tmp_path / "site" / "playwright"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('stand-in: playwright is missing')\n")
    path = os.pathsep.join([str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")])
    code, out = _pytest(tmp_path, PYTHONPATH=path)
    assert code != 0, out
    assert "playwright is not installed (stand-in: playwright is missing)" in out, out
    assert "run `make setup`" in out, out
    assert "skipped" not in out, out


def test_make_stops_before_the_suite_without_chromium(tmp_path: Path) -> None:
    """`make unit` (and so `make test`) checks for Chromium before it runs any test."""
    make = shutil.which("make")
    assert make is not None, "make is needed: `apt-get install -y make`"
    chromium = tmp_path / "chromium"
    proc = subprocess.run(
        [make, "-s", "-C", str(ROOT), "browser"],
        env={**os.environ, "DISCO_CHROMIUM": str(chromium)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert f"Chromium not found at {chromium}" in proc.stderr
    assert "`apt-get install -y chromium`" in proc.stderr
