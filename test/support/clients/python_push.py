"""A batch job pushing with Python's prometheus_client, used by the end-to-end tests.

Run with Debian's interpreter (/usr/bin/python3) and python3-prometheus-client:

    PUSHGUARD_TOKEN=... /usr/bin/python3 python_push.py --gateway 127.0.0.1:PORT \
        --job team-a-backup --op push --auth basic --grouping instance=db1 --value 42

The handlers are the README's: the token as the Basic-auth password (basic_auth_handler, user
"ci") or as a Bearer token (a default_handler wrapper). `--auth none` sends no credential.
Exit 0 on success; on a refusal, 3 with "HTTP <status>" and the response body on stderr.
"""

import argparse
import os
import sys
import urllib.error

from prometheus_client import CollectorRegistry, Gauge, delete_from_gateway, push_to_gateway, pushadd_to_gateway
from prometheus_client.exposition import basic_auth_handler, default_handler


def pushguard_handler(url, method, timeout, headers, data):
    return basic_auth_handler(url, method, timeout, headers, data, "ci", os.environ["PUSHGUARD_TOKEN"])


def bearer_handler(url, method, timeout, headers, data):
    headers = headers + [("Authorization", "Bearer " + os.environ["PUSHGUARD_TOKEN"])]
    return default_handler(url, method, timeout, headers, data)


HANDLERS = {"basic": pushguard_handler, "bearer": bearer_handler, "none": default_handler}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--job", required=True)
    parser.add_argument("--op", choices=["push", "pushadd", "delete"], default="push")
    parser.add_argument("--auth", choices=sorted(HANDLERS), default="basic")
    parser.add_argument("--grouping", action="append", default=[], help="name=value")
    parser.add_argument("--metric", default="backup_last_success_seconds")
    parser.add_argument("--value", type=float, default=1.0)
    args = parser.parse_args()

    grouping_key = dict(pair.split("=", 1) for pair in args.grouping)
    handler = HANDLERS[args.auth]
    try:
        if args.op == "delete":
            delete_from_gateway(args.gateway, job=args.job, grouping_key=grouping_key, handler=handler)
        else:
            registry = CollectorRegistry()
            Gauge(args.metric, "Pushed by the Python end-to-end client.", registry=registry).set(args.value)
            push = push_to_gateway if args.op == "push" else pushadd_to_gateway
            push(args.gateway, job=args.job, registry=registry, grouping_key=grouping_key, handler=handler)
    except urllib.error.HTTPError as error:
        body = error.read().decode("utf-8", "replace")
        print(f"HTTP {error.code}: {body}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
