"""The command lines of both binaries, and the control socket's permissions."""

import json
import os
import re
import stat
import subprocess
import time

import pytest

import legate
from legate import mapping

BINARIES = {"proxy": legate.PROXY_BIN, "controller": legate.CONTROLLER_BIN}
# A flag each --help must mention: it is the one users reach for first.
KEY_FLAG = {"proxy": "--listen", "controller": "--source-dir"}

pytestmark = pytest.mark.needs_binaries


def run(binary, *args):
    return subprocess.run([str(binary)] + list(args), capture_output=True, timeout=10,
                          stdin=subprocess.DEVNULL)


def version_string():
    """LEGATE_VERSION as common/opts.h defines it."""
    m = re.search(r'#define LEGATE_VERSION "([^"]+)"', (legate.REPO / "common" / "opts.h").read_text())
    return m.group(1)


def sanitizer_clean(cp):
    err = cp.stderr.decode(errors="replace")
    return not any(m in err for m in legate.SANITIZER_MARKS)


@pytest.mark.parametrize("which", BINARIES)
def test_help_exits_0(which):
    cp = run(BINARIES[which], "--help")
    assert cp.returncode == 0, cp
    out = (cp.stdout + cp.stderr).decode()
    assert KEY_FLAG[which] in out and "--control-socket" in out and "--version" in out, out
    assert sanitizer_clean(cp)


@pytest.mark.parametrize("which", BINARIES)
def test_version_exits_0(which):
    cp = run(BINARIES[which], "--version")
    assert cp.returncode == 0, cp
    out = (cp.stdout + cp.stderr).decode()
    assert version_string() in out, out
    assert sanitizer_clean(cp)


@pytest.mark.parametrize("which", BINARIES)
@pytest.mark.parametrize("args", [["--bogus"], ["--workers", "0"], ["--log-level", "loud"]],
                         ids=["unknown-flag", "bad-workers", "bad-level"])
def test_bad_flag_exits_2_with_one_line(which, args):
    if which == "controller" and args[0] == "--workers":
        pytest.skip("the controller has no --workers")
    cp = run(BINARIES[which], *args)
    assert cp.returncode == 2, cp
    err = cp.stderr.decode()
    assert err.endswith("\n") and err.count("\n") == 1, repr(err)
    assert args[0].lstrip("-") in err, err
    assert cp.stdout == b""


def test_control_socket_is_0600(stack):
    stack.start_proxy()
    st = legate.wait_until(lambda: os.stat(stack.sock), 5, "control socket")
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(stat.S_IMODE(st.st_mode))


def test_stale_control_socket_is_replaced(stack):
    # A socket file left by a killed proxy must not stop the next one.
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(stack.sock))
    s.close()
    os.chmod(stack.sock, 0o666)
    stack.start_proxy()
    st = os.stat(stack.sock)
    assert stat.S_IMODE(st.st_mode) == 0o600
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(5)
    with c, c.makefile("rb") as f:
        c.connect(str(stack.sock))
        # The proxy speaks first: one frame (4-byte big-endian length, then JSON) saying hello.
        n = int.from_bytes(f.read(4), "big")
        hello = json.loads(f.read(n))
    assert hello["type"] == "hello" and hello["protocol"] == 1, hello
    assert hello["version"] == 0 and hello["pid"] == stack.proxy.pid, hello


def test_missing_source_dir_exits_2_with_one_line(tmp_path):
    cp = run(legate.CONTROLLER_BIN, "--source-dir", str(tmp_path / "missing"),
             "--control-socket", str(tmp_path / "c.sock"))
    assert cp.returncode == 2, cp
    err = cp.stderr.decode()
    assert err.count("\n") == 1 and "source-dir" in err, repr(err)


def cpu_ticks(pid):
    """utime + stime of all of pid's threads, in clock ticks."""
    total = 0
    for t in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/stat" % (pid, t)) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total


def test_busy_poll_serves_then_sleeps(stack):
    """--busy-poll: requests are served as usual, and once traffic stops the workers sleep
    again; a worker that kept polling would burn a whole CPU while idle."""
    stack.start_upstream("a")
    stack.start_proxy(extra=["--busy-poll", "1000"])
    stack.start_controller()
    stack.write_service("u", "default", mapping("u", "/u/", stack.upstreams["a"].addr))
    stack.wait_route_set({"u"})
    for i in range(30):
        r = stack.curl("/u/n%d" % i)
        assert r.status == 200 and r.json()["path"] == "/n%d" % i, r
    time.sleep(0.5)
    t0 = cpu_ticks(stack.proxy.pid)
    time.sleep(2)
    used = cpu_ticks(stack.proxy.pid) - t0
    hz = os.sysconf("SC_CLK_TCK")
    assert used < hz // 5, "idle proxy used %d ticks in 2 s (%d per second)" % (used, hz)
