"""The wheel: what it contains, and that it works in a newly generated Django site.

Builds the wheel from this checkout, installs it into a fresh virtualenv (dependencies from the
package index, pip's cache makes repeated runs quick), wires it into a ``django-admin
startproject`` site exactly as the README says and makes real requests through Django's test
client inside that site.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.db_independent]

ROOT = Path(__file__).resolve().parent.parent
#: Variables of this test run that must not leak into the new site.
LEAKY_ENV = {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}


def run(args, *, cwd=None, timeout=180) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in LEAKY_ENV}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--wheel", "--outdir", out, ROOT])
    (built,) = out.glob("plunk_events-*.whl")
    return built


def source_files() -> set[str]:
    package = ROOT / "plunk_events"
    return {
        path.relative_to(ROOT).as_posix()
        for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def test_wheel_contains_the_app_and_nothing_else(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(
            archive.read(n).decode() for n in names if n.endswith(".dist-info/METADATA")
        )

    top_level = {name.split("/")[0] for name in names}
    dist_info = {t for t in top_level if t.endswith(".dist-info")}
    assert top_level - dist_info == {"plunk_events"}
    assert len(dist_info) == 1 and re.fullmatch(r"plunk_events-[\w.]+\.dist-info", *dist_info)
    # Every file of the package is shipped: code, migrations, templates, static files.
    assert source_files() <= names
    assert "plunk_events/migrations/0001_initial.py" in names
    for folder in ("templates", "static"):
        shipped = [n for n in source_files() if n.startswith(f"plunk_events/{folder}/")]
        assert all(n in names for n in shipped)
    assert not any(n.startswith(("tests/", "example_project/")) for n in names)
    assert re.search(r"^Name: plunk-events$", metadata, re.MULTILINE)
    assert re.search(r"^Requires-Dist: django<6,>=5\.2$", metadata, re.MULTILINE | re.IGNORECASE)
    assert re.search(r"^Provides-Extra: postgres$", metadata, re.MULTILINE)


PROBE = """
import json, os, sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hostsite.settings")
import django

django.setup()
from django.test import Client
from django.test.utils import setup_test_environment

import plunk_events

setup_test_environment()  # allows the test client's host name, nothing else
public_key, secret_key = sys.argv[1:3]
client = Client()


def call(method, path, key, **kwargs):
    response = getattr(client, method)(path, HTTP_AUTHORIZATION=f"Bearer {key}", **kwargs)
    return [response.status_code, response.json()]


body = {"email": "New.User@Example.com", "event": "signed_up", "data": {"plan": "pro"}}
print(json.dumps({
    "module": plunk_events.__file__,
    "track": call("post", "/api/v1/track", public_key, data=body, content_type="application/json"),
    "events": call("get", "/api/events", secret_key),
    "events_with_pk": call("get", "/api/events", public_key),
    "unknown": call("get", "/api/v1/nope", secret_key),
}))
"""


def test_wheel_installs_into_a_new_django_site(wheel, tmp_path):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    # The outer pip installs into the new environment (saves bootstrapping pip there).
    run([sys.executable, "-m", "pip", "--python", python, "install", "-q", wheel], timeout=300)

    site = tmp_path / "site"
    site.mkdir()
    run([venv / "bin" / "django-admin", "startproject", "hostsite", site])
    settings = site / "hostsite" / "settings.py"
    settings.write_text(
        settings.read_text()
        + '\nINSTALLED_APPS += ["rest_framework", "django_filters", "plunk_events"]\n'
    )
    urls = site / "hostsite" / "urls.py"
    urls.write_text(
        urls.read_text()
        + "\nfrom django.urls import include\n\n"
        + 'urlpatterns += [path("api/", include("plunk_events.urls"))]\n'
    )

    manage = [python, site / "manage.py"]
    # The minimal wiring passes the checks (warnings at most) ...
    assert "ERRORS:" not in run([*manage, "check"], cwd=site).stderr
    # ... and with the database options the README recommends there is nothing left to say.
    settings.write_text(
        settings.read_text()
        + '\nDATABASES["default"]["CONN_MAX_AGE"] = 600\n'
        + 'DATABASES["default"]["CONN_HEALTH_CHECKS"] = True\n'
        + 'DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE"}\n'
    )
    checked = run([*manage, "check"], cwd=site)
    assert "System check identified no issues" in checked.stdout, checked.stderr
    run([*manage, "migrate", "--noinput"], cwd=site)
    output = run([*manage, "plunk_create_project", "Test", "--json"], cwd=site).stdout
    keys = json.loads(output.strip().splitlines()[-1])
    assert keys["name"] == "Test"

    (site / "probe.py").write_text(PROBE)
    result = json.loads(
        run([python, site / "probe.py", keys["public_key"], keys["secret_key"]], cwd=site).stdout
    )

    # The app came from the wheel, not from this checkout.
    assert Path(result["module"]).is_relative_to(venv)
    status, tracked = result["track"]
    assert status == 200 and tracked["success"] is True
    assert set(tracked["data"]) == {"contact", "event", "timestamp"}
    assert result["events"] == [
        200,
        {
            "events": [
                {
                    "id": tracked["data"]["event"],
                    "name": "signed_up",
                    "contactId": tracked["data"]["contact"],
                    "emailId": None,
                    "data": {"plan": "pro"},
                    "createdAt": tracked["data"]["timestamp"],
                    "contact": {"email": "new.user@example.com"},
                }
            ],
            "cursor": None,
            "hasMore": False,
        },
    ]
    # The app's own error envelope works without any REST_FRAMEWORK setting in the host.
    status, error = result["events_with_pk"]
    assert status == 401 and error["success"] is False
    assert error["error"]["code"] == "INVALID_API_KEY"
    status, error = result["unknown"]
    assert status == 404 and error["error"]["code"] == "RESOURCE_NOT_FOUND"
