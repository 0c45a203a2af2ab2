"""Audit the locked dependencies for known vulnerabilities with pip-audit, and say plainly what was proved.

    .venv/bin/python scripts/audit_dependencies.py [requirements.txt ...]

pip-audit alone can pass without auditing anything: when the vulnerability service answers "not found" for every
package (a mirror of PyPI that lacks the per-release JSON does), it reports "No known vulnerabilities found" and
exits 0. So first a canary is audited, a pin with published vulnerabilities (Django 3.2.0): only if the service
reports them is it answering, and only then does a clean result mean anything.

Exit status: 0 when every pin was audited and none is known to be vulnerable; 1 when one is; 0 again, with a loud
notice, when the service cannot be reached or is not answering, since that says nothing about our pins (set
AUDIT_REQUIRED=true to make that a failure too, where the service must be reachable).

Environment: AUDIT_SERVICE (``pypi``, pip-audit's default, or ``osv``), AUDIT_OSV_URL (another OSV endpoint),
AUDIT_REQUIRED, AUDIT_TIMEOUT (seconds per request, 15 by default).
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CANARY = "django==3.2.0\n"  # dozens of published advisories; any working service reports some
BANNER = "!" * 100


def _pip_audit(requirements: Path, output: Path) -> tuple[dict | None, str]:
    """Run pip-audit on pinned ``requirements`` (no resolving, no installing); its JSON report, or None and why."""
    command = [
        str(Path(sys.executable).with_name("pip-audit")),
        "--requirement",
        str(requirements),
        "--no-deps",
        "--disable-pip",
        "--progress-spinner",
        "off",
        "--format",
        "json",
        "--output",
        str(output),
        "--vulnerability-service",
        os.environ.get("AUDIT_SERVICE", "pypi"),
        "--timeout",
        os.environ.get("AUDIT_TIMEOUT", "15"),
        "--cache-dir",
        str(output.parent / "cache"),
    ]
    if os.environ.get("AUDIT_OSV_URL"):
        command += ["--osv-url", os.environ["AUDIT_OSV_URL"]]
    output.unlink(missing_ok=True)
    finished = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if not output.exists():
        lines = [line for line in finished.stderr.strip().splitlines() if line.strip()]
        return None, lines[-1] if lines else f"pip-audit exited {finished.returncode} without a report"
    return json.loads(output.read_text()), ""


def _vulnerable(report: dict) -> list[dict]:
    return [dep for dep in report["dependencies"] if dep.get("vulns")]


def _skipped(report: dict) -> list[dict]:
    return [dep for dep in report["dependencies"] if dep.get("skip_reason")]


def _not_audited(reason: str) -> int:
    print(BANNER)
    print("DEPENDENCY AUDIT NOT PERFORMED: the vulnerability service could not be reached or is not answering.")
    print(f"  service: {os.environ.get('AUDIT_SERVICE', 'pypi')}  reason: {reason}")
    print("  Nothing is known about the pins' vulnerabilities from this run; it is neither a pass nor a failure.")
    print(BANNER)
    return 1 if os.environ.get("AUDIT_REQUIRED", "").lower() == "true" else 0


def main(paths: list[str]) -> int:
    files = [Path(path) for path in paths or ["requirements.txt"]]
    with tempfile.TemporaryDirectory(prefix="audit-") as tmp:
        work = Path(tmp)
        canary = work / "canary.txt"
        canary.write_text(CANARY)
        report, error = _pip_audit(canary, work / "canary.json")
        if report is None:
            return _not_audited(error)
        if not _vulnerable(report):
            reasons = "; ".join(dep["skip_reason"] for dep in _skipped(report)) or "it reported no advisories"
            return _not_audited(f"the canary {CANARY.strip()} was not flagged ({reasons})")

        failed = False
        for requirements in files:
            report, error = _pip_audit(requirements, work / "report.json")
            if report is None:
                return _not_audited(error)
            audited = len(report["dependencies"]) - len(_skipped(report))
            print(f"{requirements}: {audited} pins audited against a service that flags the canary")
            for dep in _vulnerable(report):
                failed = True
                for vuln in dep["vulns"]:
                    fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed release yet"
                    print(f"  VULNERABLE {dep['name']}=={dep['version']}: {vuln['id']} (fixed in {fixes})")
            for dep in _skipped(report):
                print(f"  NOT AUDITED {dep['name']}: {dep['skip_reason']}")
        if not failed:
            print("No known vulnerabilities in the locked dependencies.")
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
