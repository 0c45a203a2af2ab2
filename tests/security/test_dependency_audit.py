"""The dependency audit CI runs (scripts/audit_dependencies.py): it fails on a vulnerable pin when the service
answers, passes a clean lock, and says loudly, without failing, when the service cannot be reached.

The service here is a local stand-in for OSV's query API that knows two advisories, so the audit's decisions are
proved without the internet.
"""

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "audit_dependencies.py"
ADVISORIES = {
    ("django", "3.2.0"): {"id": "GHSA-canary-0001", "fixed": "3.2.1"},
    ("requests", "2.19.0"): {"id": "PYSEC-2018-28", "fixed": "2.20.0"},
}


class FakeOSV(BaseHTTPRequestHandler):
    def do_POST(self):
        query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        advisory = ADVISORIES.get((query["package"]["name"], query["version"]))
        body = {}
        if advisory:
            body = {
                "vulns": [
                    {
                        "id": advisory["id"],
                        "summary": "A known vulnerability",
                        "affected": [
                            {
                                "package": {"name": query["package"]["name"], "ecosystem": "PyPI"},
                                "ranges": [
                                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": advisory["fixed"]}]}
                                ],
                            }
                        ],
                    }
                ]
            }
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def osv_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOSV)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1/query"
    server.shutdown()


def audit(tmp_path, pins: str, **env) -> subprocess.CompletedProcess:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(pins)
    environment = {"PATH": "/usr/bin:/bin", "AUDIT_SERVICE": "osv", "AUDIT_TIMEOUT": "5", **env}
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(requirements)], capture_output=True, text=True, env=environment, check=False
    )


def test_it_fails_on_a_known_vulnerable_pin(tmp_path, osv_url):
    result = audit(tmp_path, "requests==2.19.0\nidna==3.10\n", AUDIT_OSV_URL=osv_url)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "VULNERABLE requests==2.19.0: PYSEC-2018-28 (fixed in 2.20.0)" in result.stdout


def test_it_passes_pins_with_no_known_vulnerability(tmp_path, osv_url):
    result = audit(tmp_path, "requests==2.32.5\nidna==3.10\n", AUDIT_OSV_URL=osv_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 pins audited" in result.stdout
    assert "No known vulnerabilities" in result.stdout


def test_an_unreachable_service_is_reported_loudly_and_is_not_a_pass(tmp_path):
    closed = "http://127.0.0.1:9/v1/query"  # the discard port: nothing listens
    result = audit(tmp_path, "requests==2.19.0\n", AUDIT_OSV_URL=closed)
    assert result.returncode == 0
    assert "DEPENDENCY AUDIT NOT PERFORMED" in result.stdout
    assert "No known vulnerabilities" not in result.stdout

    required = audit(tmp_path, "requests==2.19.0\n", AUDIT_OSV_URL=closed, AUDIT_REQUIRED="true")
    assert required.returncode == 1


def test_a_service_that_flags_nothing_is_not_trusted(tmp_path, osv_url, monkeypatch):
    """Like a mirror answering "not found" for every release: the canary goes unflagged, so nothing is claimed."""
    monkeypatch.delitem(ADVISORIES, ("django", "3.2.0"))
    result = audit(tmp_path, "requests==2.32.5\n", AUDIT_OSV_URL=osv_url)
    assert result.returncode == 0
    assert "DEPENDENCY AUDIT NOT PERFORMED" in result.stdout
    assert "canary django==3.2.0 was not flagged" in result.stdout
