#!/usr/bin/env python3
"""Write a Legate source dir with many routes for bench/memory.sh.

--routes R routes spread over Services of --per-service Mappings each, one
Service manifest per file (svc-00000.yaml, ...). Every Mapping has its own
prefix /r/<service>/<mapping>/ and points at the benchmark upstream, so any of
them can be checked with curl.
"""
import argparse
import os


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--routes", type=int, default=100000)
    ap.add_argument("--per-service", type=int, default=100)
    ap.add_argument("--upstream", default="127.0.0.1:18080")
    a = ap.parse_args()

    os.makedirs(a.out, exist_ok=True)
    services = (a.routes + a.per_service - 1) // a.per_service
    left = a.routes
    for s in range(services):
        n = min(a.per_service, left)
        left -= n
        docs = []
        for m in range(n):
            docs.append(
                "      ---\n"
                "      apiVersion: ambassador/v1\n"
                "      kind: Mapping\n"
                "      name: r%05d_%03d\n"
                "      prefix: /r/%05d/%03d/\n"
                "      service: %s\n" % (s, m, s, m, a.upstream)
            )
        with open(os.path.join(a.out, "svc-%05d.yaml" % s), "w") as f:
            f.write(
                "apiVersion: v1\n"
                "kind: Service\n"
                "metadata:\n"
                "  name: svc-%05d\n"
                "  namespace: default\n"
                "  annotations:\n"
                "    getambassador.io/config: |\n" % s
                + "".join(docs)
                + "spec:\n"
                "  ports:\n"
                "  - port: 80\n"
            )
    print("%d routes in %d services written to %s" % (a.routes, services, a.out))


if __name__ == "__main__":
    main()
