"""A smoke run of `make demo`'s steps on a fresh SQLite database, served over real HTTP."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.waiting import free_port, until

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_the_demo_migrates_loads_and_serves(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update(DEBUG="1", DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}")
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
    subprocess.run(
        [*manage, "load_market", "exchange/fixtures/demo_market.yaml"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
        capture_output=True,
    )
    port = free_port()
    logs = tmp_path / "log"
    server = subprocess.Popen(
        [*manage, "demo_serve", "--port", str(port), "--buyers-port", str(free_port()), "--logs", str(logs)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/login/", timeout=2)  # noqa: S310
                break
            except OSError:
                time.sleep(0.2)
        jar = CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        page = opener.open(f"{base}/login/").read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        form = urlencode({"username": "owner@acme.test", "password": "gavel-demo-pass", "csrfmiddlewaretoken": token})
        home = opener.open(
            urllib.request.Request(f"{base}/login/", data=form.encode(), headers={"Referer": f"{base}/login/"})
        )
        assert home.url == f"{base}/portal/"
        assert "Acme Insurance" in home.read().decode()
        assert "Acme West Coast" in opener.open(f"{base}/portal/contracts/").read().decode()
        request = urllib.request.Request(
            f"{base}/api/v1/campaigns", headers={"Authorization": "Bearer gvl_demo_leadgen_0000000000000"}
        )
        assert b"cmp_leadgen_auto" in urllib.request.urlopen(request).read()  # noqa: S310
        assert urllib.request.urlopen(f"{base}/api/docs").status == 200  # noqa: S310
        assert urllib.request.urlopen(f"{base}/static/gavel.css").status == 200  # noqa: S310
        # The worker and beat run beside the server, on the embedded broker.
        until(lambda: "celery@" in read(logs / "worker.log") and " ready." in read(logs / "worker.log"))
        until(lambda: "beat: Starting..." in read(logs / "beat.log"))
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
        print(output)
    assert "owner@acme.test" in output and "operator@gavel.test" in output
    assert f"sqla+sqlite:///{tmp_path / 'demo.sqlite3-tasks'}" in output
    pids = re.search(r"Celery worker \(pid (\d+)\) and beat \(pid (\d+)\)", output)
    assert pids, output
    for pid in map(int, pids.groups()):  # they stop with the demo
        until(lambda pid=pid: not Path(f"/proc/{pid}").exists())


def read(path: Path) -> str:
    return path.read_text() if path.exists() else ""
