#!/usr/bin/python3
"""The echo upstream (echo.py) behind TLS, for Legate's TLS-origination tests.

Same answers and request log as echo.py; the listening socket is wrapped with a certificate
the test made (self-signed: Legate, like Ambassador without a TLSContext, does not verify
upstream certificates). The server name each client sent in its handshake (SNI, "" for
none) is appended to --sni-log, one line per handshake.

    tls_echo.py --listen 127.0.0.1:0 --port-file F --name NAME --log F \
                --cert CERT --key KEY --sni-log F
"""

import argparse
import os
import ssl
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import echo  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description="TLS echo upstream for Legate's tests")
    ap.add_argument("--listen", type=echo.split_hostport, default=("127.0.0.1", 0))
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--name", default="tls-echo")
    ap.add_argument("--log")
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

    echo.Handler.name = args.name
    echo.Handler.logger = echo.Logger(args.log)
    srv = echo.Server(args.listen, echo.Handler)
    # The handshake runs in the handler's thread (first read), not in accept().
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    port = srv.server_address[1]
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.rename(tmp, args.port_file)
    print("tls echo %s listening on %s:%d" % (args.name, args.listen[0], port), file=sys.stderr)
    sys.stderr.flush()
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
