#!/usr/bin/python3
"""A WebSocket echo upstream for Legate's end-to-end tests (stdlib only).

A request with `Upgrade: websocket` and a `Sec-WebSocket-Key` is answered 101 with the
RFC 6455 accept value, then every data frame the client sends (masked, as clients must) is
sent back unmasked with the same opcode; a close frame is answered with a close frame and the
connection ends. Any other request is answered 426 with a JSON body saying what arrived, so a
test can tell that the proxy did not forward the upgrade.

    ws_echo.py --listen 127.0.0.1:0 --port-file F [--log F]

With --log, one JSON line per request head (method, path, headers) is appended.
"""

import base64
import hashlib
import json
import socketserver
import struct
import sys

from serving import Logger, arg_parser, serve_forever

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_value(key):
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def read_frame(f):
    """Returns (opcode, payload) of one frame, or None at the end of the stream."""
    head = f.read(2)
    if len(head) < 2:
        return None
    opcode = head[0] & 0x0F
    masked = head[1] & 0x80
    n = head[1] & 0x7F
    if n == 126:
        n = struct.unpack("!H", f.read(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", f.read(8))[0]
    mask = f.read(4) if masked else b""
    data = f.read(n)
    if masked:
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return opcode, data


def frame(opcode, data, mask=None):
    """One final frame; masked when mask (4 bytes) is given (a client's)."""
    n = len(data)
    b1 = 0x80 if mask else 0
    if n < 126:
        head = bytes([0x80 | opcode, b1 | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, b1 | 126]) + struct.pack("!H", n)
    else:
        head = bytes([0x80 | opcode, b1 | 127]) + struct.pack("!Q", n)
    if mask:
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        return head + mask + data
    return head + data


class Handler(socketserver.StreamRequestHandler):
    logger = Logger(None)  # set by main()

    def handle(self):
        line = self.rfile.readline(65536).decode("latin-1").rstrip("\r\n")
        if not line:
            return
        headers = []
        while True:
            h = self.rfile.readline(65536).decode("latin-1")
            if h in ("\r\n", "\n", ""):
                break
            k, _, v = h.partition(":")
            headers.append([k.strip(), v.strip()])
        hd = {k.lower(): v for k, v in headers}
        parts = line.split()
        entry = {"method": parts[0] if parts else "", "path": parts[1] if len(parts) > 1 else "",
                 "headers": headers}
        Handler.logger.write(entry)
        if hd.get("upgrade", "").lower() != "websocket" or "sec-websocket-key" not in hd:
            body = json.dumps(entry).encode()
            self.wfile.write(b"HTTP/1.1 426 Upgrade Required\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            return
        self.wfile.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n"
                          % accept_value(hd["sec-websocket-key"])).encode())
        self.wfile.flush()
        while True:
            fr = read_frame(self.rfile)
            if fr is None:
                return
            opcode, data = fr
            if opcode == 0x8:
                self.wfile.write(frame(0x8, data[:2]))
                self.wfile.flush()
                return
            if opcode == 0x9:
                self.wfile.write(frame(0xA, data))
            else:
                self.wfile.write(frame(opcode, data))
            self.wfile.flush()


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main(argv=None):
    args = arg_parser("WebSocket echo upstream for Legate's tests").parse_args(argv)
    Handler.logger = Logger(args.log)
    return serve_forever(args, Server(args.listen, Handler), "ws echo")


if __name__ == "__main__":
    sys.exit(main())
