#!/usr/bin/python3
"""A misbehaving HTTP/1.1 upstream for Legate's end-to-end tests: it answers with the broken
framing a proxy must not pass on (docs/security.md, "Responses").

Requests are read strictly enough to serve tests (a head, then a Content-Length body), and
every request is logged (--log, one JSON line, flushed before anything is answered):

    {"conn_id", "seq" (1-based request number on its connection), "method", "path",
     "headers" ([name, value] pairs)}

The path picks the behaviour; any other path gets a well-formed keep-alive answer, whose JSON
body {"conn_id", "seq", "path"} tells a test which connection served it.

    /two-responses[?gap_ms=N]  a good response, then (N ms later) a second, unasked one
    /long-body                 Content-Length: 5 with more bytes behind (a response head)
    /short-body                Content-Length: 100, 10 bytes, then the close
    /bad-chunk                 chunked, a chunk size that is not hex
    /chunk-no-crlf             chunked, chunk data followed by "XX" instead of CRLF
    /chunk-then-bad            a good chunk, a pause, then a bad chunk size
    /te-gzip                   Transfer-Encoding: gzip (no chunked), body until the close
    /cl-te                     both Content-Length and Transfer-Encoding
    /bare-lf                   a head ending in a bare LF
    /reset-mid                 head and part of the body, then a TCP reset
    /slow-reader?ms=N          waits N ms before reading the request body, then answers
    /never                     reads the request, never answers (until the peer closes)
    /close-before              reads the request, closes without a byte

    evil.py --listen 127.0.0.1:0 --port-file F --log F
"""

import itertools
import json
import socket
import struct
import sys
import threading
import time
import urllib.parse

from serving import Logger, arg_parser, run

HEAD_MAX = 1 << 20

# A whole second response, for a proxy to pass on as if the client had asked for it.
SMUGGLED = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"

# The paths answered with fixed bytes: path -> (the bytes, whether the connection goes on).
CANNED = {
    "/long-body": (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" + SMUGGLED, True),
    "/short-body": (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", False),
    "/bad-chunk": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
                   True),
    "/chunk-no-crlf": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
                       True),
    "/te-gzip": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8bnot really gzip",
                 False),
    "/cl-te": (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"0\r\n\r\nhello", True),
    "/bare-lf": (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\nhello", True),
}


class Conn:
    """One accepted connection: reads requests, answers each as its path says."""

    ids = itertools.count(1)
    ids_lock = threading.Lock()

    def __init__(self, sock, logger):
        self.sock = sock
        self.logger = logger
        self.buf = b""
        with Conn.ids_lock:
            self.id = next(Conn.ids)
        self.seq = 0

    def read_request(self):
        """Returns (method, target, headers) or None at the close."""
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > HEAD_MAX:
                return None
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = (lines[0].split(" ", 2) + ["", ""])[:3]
        headers = []
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.append([k.strip(), v.strip()])
        n = 0
        for k, v in headers:
            if k.lower() == "content-length" and v.isdigit():
                n = int(v)
        if target.startswith("/slow-reader"):
            # Leaves the request body in the socket for a while: the sender is held up by
            # us, not by its client.
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(target).query)
            time.sleep(int(q.get("ms", ["1000"])[0]) / 1000.0)
        parts, have = [self.buf], len(self.buf)
        while have < n:
            data = self.sock.recv(1 << 20)
            if not data:
                return None
            parts.append(data)
            have += len(data)
        self.buf = b"".join(parts)[n:]
        return method, target, headers

    def good(self, path, extra=b""):
        body = json.dumps({"conn_id": self.id, "seq": self.seq, "path": path}).encode()
        return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)) + extra

    def serve(self):
        try:
            while True:
                req = self.read_request()
                if req is None:
                    return
                method, target, headers = req
                self.seq += 1
                url = urllib.parse.urlsplit(target)
                q = urllib.parse.parse_qs(url.query)
                self.logger.write({"conn_id": self.id, "seq": self.seq, "method": method,
                                   "path": target, "headers": headers})
                if not self.answer(url.path, q, target):
                    return
        except (ConnectionError, OSError):
            return
        finally:
            try:
                self.sock.close()
            except OSError:
                pass

    def answer(self, path, q, target):
        """Answers one request; returns False when the connection must end."""
        s = self.sock
        if path in CANNED:
            data, keep = CANNED[path]
            s.sendall(data)
            return keep
        if path == "/two-responses":
            gap = int(q.get("gap_ms", ["0"])[0])
            if gap:
                s.sendall(self.good(target))
                time.sleep(gap / 1000.0)
                s.sendall(SMUGGLED)
            else:
                s.sendall(self.good(target, SMUGGLED))
            return True
        if path == "/chunk-then-bad":
            s.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            time.sleep(0.3)
            s.sendall(b"-1\r\nxx\r\n0\r\n\r\n")
            return True
        if path == "/reset-mid":
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"r" * 1000)
            time.sleep(0.1)
            # SO_LINGER with a zero timeout: close() sends a reset, not a FIN.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if path == "/never":
            s.settimeout(120)
            while s.recv(65536):
                pass
            return False
        if path == "/close-before":
            return False
        s.sendall(self.good(target))
        return True


def main(argv=None):
    args = arg_parser("misbehaving HTTP/1.1 upstream for Legate's tests").parse_args(argv)
    logger = Logger(args.log)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(args.listen)
    srv.listen(128)

    def accept_forever():
        while True:
            s, _ = srv.accept()
            threading.Thread(target=Conn(s, logger).serve, daemon=True).start()

    return run(args, srv.getsockname()[1], "evil upstream", accept_forever)


if __name__ == "__main__":
    sys.exit(main())
