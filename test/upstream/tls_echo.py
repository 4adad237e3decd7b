#!/usr/bin/python3
"""The echo upstream (echo.py) behind TLS, for Legate's TLS-origination tests.

Same answers and request log as echo.py; the listening socket is wrapped with a certificate
the test made (self-signed: Legate, like Ambassador without a TLSContext, does not verify
upstream certificates). The server name each client sent in its handshake (SNI, "" for
none) is appended to --sni-log, one line per handshake.

    tls_echo.py --listen 127.0.0.1:0 --port-file F --name NAME --log F \
                --cert CERT --key KEY --sni-log F
"""

import ssl
import sys
import threading

import echo
from serving import arg_parser, serve_forever


def main(argv=None):
    ap = arg_parser("TLS echo upstream for Legate's tests", port_file_required=True)
    ap.add_argument("--name", default="tls-echo")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--sni-log", required=True)
    args = ap.parse_args(argv)

    lock = threading.Lock()

    def on_sni(sslobj, name, ctx):
        with lock, open(args.sni_log, "a") as f:
            f.write((name or "") + "\n")

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.sni_callback = on_sni

    srv = echo.make_server(args)
    # The handshake runs in the handler's thread (first read), not in accept().
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    return serve_forever(args, srv, "tls echo %s" % args.name)


if __name__ == "__main__":
    sys.exit(main())
