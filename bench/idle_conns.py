#!/usr/bin/env python3
"""Open N keep-alive connections, send one request on each, read the response,
then keep them all open and idle for --hold seconds.

Used by bench/memory.sh to measure a proxy's memory per idle client connection.
Prints to stdout:
  READY ok=<n> failed=<n> seconds=<t>   once every connection got its response
  STILL_OPEN <n>                        after --hold, connections the server kept
and exits. Bounded: --timeout for the opening phase, --hold for the idle phase.
"""
import argparse
import errno
import resource
import selectors
import socket
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/httpbin/")
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--parallel", type=int, default=200, help="connections being opened at once")
    ap.add_argument("--hold", type=float, default=5.0)
    ap.add_argument("--timeout", type=float, default=60.0)
    a = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < a.n + 50:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, a.n + 1000), hard))
        soft = min(hard, a.n + 1000)
    if soft < a.n + 20:
        print("cannot open %d connections: RLIMIT_NOFILE hard limit is %d" % (a.n, hard), file=sys.stderr)
        return 2

    req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: legate-bench-idle\r\n\r\n" % (a.path, a.host, a.port)).encode()
    sel = selectors.DefaultSelector()
    state = {}  # sock -> [phase, buffer]
    done, failed, started = [], 0, 0
    t0 = time.monotonic()

    def start_one():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rc = s.connect_ex((a.host, a.port))
        if rc not in (0, errno.EINPROGRESS):
            s.close()
            return False
        state[s] = ["connect", b""]
        sel.register(s, selectors.EVENT_WRITE)
        return True

    def fail(s):
        nonlocal failed
        failed += 1
        sel.unregister(s)
        del state[s]
        s.close()

    def response_complete(buf):
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = buf[:end].decode("latin-1").lower().split("\r\n")
        body = buf[end + 4:]
        for h in head[1:]:
            k, _, v = h.partition(":")
            k, v = k.strip(), v.strip()
            if k == "content-length":
                return len(body) >= int(v)
            if k == "transfer-encoding" and "chunked" in v:
                return body.endswith(b"0\r\n\r\n")
        return True  # no body framing: headers only (e.g. 204/304)

    while len(done) + failed < a.n:
        if time.monotonic() - t0 > a.timeout:
            print("timeout: %d ok, %d failed, %d pending" % (len(done), failed, len(state)), file=sys.stderr)
            break
        while started < a.n and len(state) < a.parallel:
            started += 1
            if not start_one():
                failed += 1
        for key, _ in sel.select(timeout=1.0):
            s = key.fileobj
            st = state[s]
            if st[0] == "connect":
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                    fail(s)
                    continue
                try:
                    s.send(req)
                except OSError:
                    fail(s)
                    continue
                st[0] = "read"
                sel.modify(s, selectors.EVENT_READ)
            else:
                try:
                    data = s.recv(65536)
                except OSError:
                    fail(s)
                    continue
                if not data:
                    fail(s)
                    continue
                st[1] += data
                if response_complete(st[1]):
                    if not st[1].startswith(b"HTTP/1.1 200"):
                        fail(s)
                        continue
                    sel.unregister(s)
                    del state[s]
                    done.append(s)

    print("READY ok=%d failed=%d seconds=%.1f" % (len(done), failed, time.monotonic() - t0), flush=True)

    # Idle phase: watch for connections the server closes.
    for s in done:
        sel.register(s, selectors.EVENT_READ)
    closed = set()
    end = time.monotonic() + a.hold
    while time.monotonic() < end:
        for key, _ in sel.select(timeout=max(0.0, min(1.0, end - time.monotonic()))):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:
                closed.add(s)
                sel.unregister(s)
    print("STILL_OPEN %d" % (len(done) - len(closed)), flush=True)
    for s in done:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
