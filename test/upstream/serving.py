"""What the test upstreams in this folder (echo.py, tls_echo.py, ws_echo.py, evil.py) share:

    --listen HOST:PORT   where to listen (default 127.0.0.1:0, a port the kernel picks)
    --port-file F        the bound port, written once listening (atomically: a test polls it)
    --log F              one JSON line per request, flushed before the request is answered

and serving until stopped (SIGINT ends quietly; SIGTERM, what the tests send, ends the
process).

    ap = serving.arg_parser("what this upstream is")
    args = ap.parse_args(argv)
    logger = serving.Logger(args.log)
    ...
    return serving.serve_forever(args, srv, "echo NAME")
"""

import argparse
import json
import os
import sys
import threading


def split_hostport(s):
    """HOST:PORT (HOST may be [v6], or empty for 127.0.0.1) as (host, port)."""
    host, sep, port = s.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError("want HOST:PORT, got %r" % s)
    return host.strip("[]") or "127.0.0.1", int(port)


def arg_parser(description, port_file_required=False):
    """An ArgumentParser with the shared options; an upstream adds its own."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--listen", type=split_hostport, default=("127.0.0.1", 0))
    ap.add_argument("--port-file", required=port_file_required,
                    help="write the bound port here once listening")
    ap.add_argument("--log", help="append one JSON line per request to this file")
    return ap


class Logger:
    """Appends JSON lines to a file (none when path is empty); one lock so that threads do
    not interleave their lines."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.f = open(path, "a", encoding="utf-8") if path else None

    def write(self, entry):
        if not self.f:
            return
        line = json.dumps(entry, sort_keys=True) + "\n"
        with self.lock:
            self.f.write(line)
            self.f.flush()


def announce(args, port, label):
    """Says where `label` listens: the port in args.port_file (written beside and renamed, so
    a reader never sees a partial number), and a line on stderr."""
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.port_file)
    print("%s listening on %s:%d" % (label, args.listen[0], port), file=sys.stderr)
    sys.stderr.flush()


def run(args, port, label, loop):
    """Announces the port, then runs loop() until it returns or SIGINT. Returns 0, the exit
    status."""
    announce(args, port, label)
    try:
        loop()
    except KeyboardInterrupt:
        pass
    return 0


def serve_forever(args, srv, label):
    """run() for a socketserver server."""
    return run(args, srv.server_address[1], label, lambda: srv.serve_forever(poll_interval=0.2))
