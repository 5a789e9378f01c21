"""The 60-second version of the soak bench (bench/perf/soak.py; issue 17, item 5)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]


def test_a_minute_at_30_hz_with_reloads_and_a_model_renamed_away(tmp_path, ros_domains):
    domain = ros_domains.new()
    out = tmp_path / "soak.json"
    proc = subprocess.run([sys.executable, "-m", "bench.perf.soak", "--places", "300", "--minutes", "1",
                           "--reload-every", "20", "--domain", str(domain), "--json-out", str(out)],
                          cwd=ROOT, env=ros_domains.env(domain), capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(out.read_text())
    reloads = summary["reloads"]
    assert [r["kind"] for r in reloads] == ["model renamed away", "scheduled", "scheduled"]
    assert all(r["answered"] for r in reloads)
    renamed = reloads[0]
    assert not renamed["success"] and "keeping" in renamed["message"]
    assert renamed["answered_after"] > 0, "the old model stopped answering during the failed reload"
    assert all(r["success"] and "300 places" in r["message"] for r in reloads[1:])
    assert summary["bad_answers"] == 0 and summary["frames_failed"] == 0
    minute = summary["minutes"][0]
    assert minute["answered"] > 0 and minute["rss_mb"] > 0
