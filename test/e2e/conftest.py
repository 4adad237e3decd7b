"""Fixtures for Legate's end-to-end tests.

    stack   a Stack with nothing started (the test decides the order)
    lg      the same Stack with upstream "a", a proxy and a controller started (empty
            source dir)
    pki     a directory for the test Kubernetes API server's certificates, one per module
    api     that API server (kube_helpers.start_api: TLS, a bearer token), stopped after the
            test; ask for it after `stack` so that it stops first

Teardown stops every process and fails the test when one of them exited by itself, died
badly on SIGTERM, or printed a sanitizer report. When a test fails, the tail of every
process log is attached to its report, and the test's files (logs, upstream request logs,
the source dir) are copied to build/e2e-failures/<test>/ (see README.md).
"""

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import legate  # noqa: E402


def pytest_report_header(config):
    return "legate build: %s%s" % (legate.BUILD, " (sanitized)" if legate.SANITIZED else "")


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_binaries: runs build/legate-proxy or legate-controller")


def pytest_collection_modifyitems(config, items):
    missing = [p for p in (legate.PROXY_BIN, legate.CONTROLLER_BIN) if not p.exists()]
    if not missing:
        return
    # Without binaries these cannot run: say why once per test instead of a traceback.
    skip = pytest.mark.skip(reason="not built: %s (run make)" % ", ".join(map(str, missing)))
    for item in items:
        uses = set(getattr(item, "fixturenames", ()))
        if uses & {"stack", "lg", "routed"} or item.get_closest_marker("needs_binaries"):
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    st = getattr(item, "legate_stack", None)
    if st is None or not rep.failed:
        return
    item.legate_failed = True
    for title, text in st.logs():
        rep.sections.append(("log " + title, text))
    rep.sections.append(("legate files", "kept in %s and %s" % (st.dir, failure_dir(item))))


def failure_dir(item):
    """Where a failed test's files are copied: pytest's tmp dirs rotate away after three
    runs (anyone's), this one stays until the next failure of the same test."""
    base = Path(os.environ.get("LEGATE_E2E_FAILURES", str(legate.REPO / "build" / "e2e-failures")))
    return base / re.sub(r"[^A-Za-z0-9_.\-\[\]]+", "_", item.nodeid.split("::", 1)[-1])


def keep_files(item, st):
    dest = failure_dir(item)
    try:
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(st.dir, dest, ignore=shutil.ignore_patterns("*.bin", "curl-body-*"))
    except OSError as e:
        print("could not keep the files of %s in %s: %s" % (item.nodeid, dest, e))


@pytest.fixture
def stack(request, tmp_path):
    st = legate.Stack(tmp_path)
    request.node.legate_stack = st
    yield st
    problems = st.close()
    # Copied after the processes stopped, so what they logged on the way out is in too.
    if problems or getattr(request.node, "legate_failed", False):
        keep_files(request.node, st)
    if problems:
        pytest.fail("process problems at teardown:\n  " + "\n  ".join(problems), pytrace=False)


@pytest.fixture
def lg(stack):
    """Upstream "a", a proxy and a controller on an empty source dir."""
    return stack.start()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return tmp_path_factory.mktemp("pki")


@pytest.fixture
def api(tmp_path, pki):
    # Imported here: kube_helpers asks the controller binary what it speaks, which only the
    # Kubernetes tests need to pay for.
    from kube_helpers import api_running

    with api_running(tmp_path, pki) as a:
        yield a
