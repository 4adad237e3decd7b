#!/usr/bin/python3
"""A real HTTP/1.1 upstream for Legate's end-to-end tests and demo.

Every request, whatever its method, is answered with a JSON echo of what
arrived here:

    {"method", "path" (the raw request target, query included),
     "headers" ([name, value] pairs in wire order, duplicates kept),
     "body_sha256", "body_len", "server" (--name), "conn_id"}

`conn_id` numbers connections in accept order, so a test can tell whether
two requests travelled over one pooled upstream connection.

Special paths (the echo fields still go to the log):

    /slow-chunked?n=5&delay=0.2  chunked response, chunk i = slow_chunk(i),
                                 sent one by one with `delay` seconds between
    /sleep?ms=N                  waits N ms, then answers the echo
    /status/NNN                  answers the echo with status NNN
    /bytes/N                     N bytes of pattern_bytes(N) (Content-Length)
    /close                       answers the echo as if keeping the connection alive,
                                 then closes it (a pooled connection going stale)

Request bodies are read in both framings (Content-Length and chunked). With
--log, one JSON line per request (method, path, headers, body_len, conn_id,
and "error" for requests this server refused) is appended and flushed before
the response is written, so a test that finds no line knows the request
never reached this upstream.

The server is deliberately lenient about header sizes: a test upstream must
show what a proxy forwards, not hide it behind limits of its own.

    echo.py --listen 127.0.0.1:0 --port-file F --name NAME --log F
"""

import hashlib
import http.client
import http.server
import itertools
import json
import sys
import threading
import time
import urllib.parse

from serving import Logger, arg_parser, serve_forever

# http.client caps one header line at 64 KiB and a head at 100 headers; lift both so
# oversized requests a proxy wrongly forwards are logged here rather than refused.
http.client._MAXLINE = 1 << 22
http.client._MAXHEADERS = 100000

MAX_BODY = 1 << 30


def pattern_bytes(n, offset=0):
    """The /bytes/N pattern: byte i is (i * 7 + 3) % 251, a sequence that does not
    repeat on any power-of-two stride, so a shifted or duplicated block shows."""
    block = bytes((i * 7 + 3) % 251 for i in range(251))
    start = offset % 251
    reps = (start + n) // 251 + 1
    return (block * reps)[start : start + n]


def slow_chunk(i):
    """Content of chunk i of /slow-chunked (i from 0)."""
    return ("chunk %d of the slow response;" % i).encode() + b"." * (i * 16)


class BodyError(Exception):
    pass


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "legate-echo/1"
    # Set on the class by main().
    name = "echo"
    logger = Logger(None)
    conn_ids = itertools.count(1)
    conn_lock = threading.Lock()

    def setup(self):
        super().setup()
        with Handler.conn_lock:
            self.conn_id = next(Handler.conn_ids)

    def parse_request(self):
        ok = super().parse_request()
        # The stdlib folds a leading "//" into "/" (an open-redirect guard for file
        # servers); tests need the target exactly as the proxy sent it.
        words = self.requestline.split()
        if ok and len(words) >= 2:
            self.path = words[1]
        return ok

    def log_message(self, fmt, *args):
        # The JSON log is the record; keep stderr for tracebacks.
        pass

    def send_error(self, code, message=None, explain=None):
        # Requests refused by the stdlib parser (bad request line, header too long)
        # still reached this server: say so in the log.
        self.logger.write(
            {
                "server": self.name,
                "conn_id": self.conn_id,
                "error": code,
                "message": message or "",
                "method": getattr(self, "command", None),
                "path": getattr(self, "path", None),
            }
        )
        super().send_error(code, message, explain)

    # ---- request bodies ------------------------------------------------------------------

    def read_body(self):
        """Returns the request body, de-chunked. Raises BodyError on bad framing."""
        te = self.headers.get_all("Transfer-Encoding") or []
        if any("chunked" in v.lower() for v in te):
            return self.read_chunked()
        cl = self.headers.get("Content-Length")
        if cl is None:
            return b""
        if not cl.strip().isdigit() or int(cl) > MAX_BODY:
            raise BodyError("bad Content-Length %r" % cl)
        return self.read_exact(int(cl))

    def read_exact(self, n):
        parts = []
        while n > 0:
            b = self.rfile.read(min(n, 1 << 20))
            if not b:
                raise BodyError("body ended early")
            parts.append(b)
            n -= len(b)
        return b"".join(parts)

    def read_chunked(self):
        parts = []
        total = 0
        while True:
            line = self.rfile.readline(4096)
            if not line.endswith(b"\n"):
                raise BodyError("bad chunk size line")
            size_s = line.split(b";", 1)[0].strip()
            try:
                size = int(size_s, 16)
            except ValueError:
                raise BodyError("bad chunk size %r" % size_s)
            if size == 0:
                break
            total += size
            if total > MAX_BODY:
                raise BodyError("chunked body too large")
            parts.append(self.read_exact(size))
            if self.rfile.read(2) != b"\r\n":
                raise BodyError("missing CRLF after chunk")
        while True:  # trailer section
            line = self.rfile.readline(65536)
            if line in (b"\r\n", b"\n", b""):
                break
        return b"".join(parts)

    # ---- responses -----------------------------------------------------------------------

    def echo(self, body):
        return {
            "method": self.command,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "body_len": len(body),
            "server": self.name,
            "conn_id": self.conn_id,
        }

    def send_json(self, status, obj):
        data = (json.dumps(obj) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if status in (204, 304) or 100 <= status < 200:
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_slow_chunked(self, n, delay):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        for i in range(n):
            if i:
                time.sleep(delay)
            c = slow_chunk(i)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(c), c))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def send_bytes(self, n):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(n))
        self.end_headers()
        if self.command == "HEAD":
            return
        off = 0
        while off < n:
            step = min(1 << 18, n - off)
            self.wfile.write(pattern_bytes(step, off))
            off += step

    def handle_any(self):
        try:
            body = self.read_body()
        except BodyError as e:
            self.logger.write(
                {
                    "server": self.name,
                    "conn_id": self.conn_id,
                    "error": 400,
                    "message": str(e),
                    "method": self.command,
                    "path": self.path,
                    "headers": [[k, v] for k, v in self.headers.items()],
                }
            )
            self.close_connection = True
            self.send_json(400, {"error": str(e), "server": self.name})
            return
        echo = self.echo(body)
        entry = dict(echo)
        entry["time"] = time.time()
        self.logger.write(entry)

        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        parts = url.path.split("/")
        try:
            if url.path == "/slow-chunked":
                n = int(q.get("n", ["5"])[0])
                delay = float(q.get("delay", ["0.2"])[0])
                self.send_slow_chunked(n, delay)
            elif url.path == "/sleep":
                time.sleep(int(q.get("ms", ["0"])[0]) / 1000.0)
                self.send_json(200, echo)
            elif len(parts) == 3 and parts[1] == "status" and parts[2].isdigit():
                self.send_json(int(parts[2]), echo)
            elif len(parts) == 3 and parts[1] == "bytes" and parts[2].isdigit():
                self.send_bytes(int(parts[2]))
            elif url.path == "/close":
                self.send_json(200, echo)
                self.wfile.flush()
                self.close_connection = True
            else:
                self.send_json(200, echo)
        except (BrokenPipeError, ConnectionResetError):
            # The proxy gave up on us (a timeout test): nothing to answer.
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = handle_any

    def __getattr__(self, attr):
        # Any other method (PROPFIND, PURGE, ...) is echoed too.
        if attr.startswith("do_"):
            return self.handle_any
        raise AttributeError(attr)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def make_server(args):
    """The echo server for parsed arguments (--listen, --name, --log), not serving yet."""
    Handler.name = args.name
    Handler.logger = Logger(args.log)
    return Server(args.listen, Handler)


def main(argv=None):
    ap = arg_parser("HTTP/1.1 echo upstream for Legate's tests")
    ap.add_argument("--name", default="echo", help="reported as \"server\" in every answer")
    args = ap.parse_args(argv)
    return serve_forever(args, make_server(args), "echo %s" % args.name)


if __name__ == "__main__":
    sys.exit(main())
