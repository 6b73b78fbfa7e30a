"""``edgernn serve-route``: where each sequence goes among Triton twin servers, and draining one.

    edgernn serve-route --servers 127.0.0.1:8001,127.0.0.1:9001 --owner 42 43      # which server owns each id
    edgernn serve-route --servers 127.0.0.1:8001,127.0.0.1:9001 --status           # live sequences per server
    edgernn serve-route --servers 127.0.0.1:8001,127.0.0.1:9001 --drain 127.0.0.1:8001

Parses and prints; the work is ``edgernn.export.triton_route.Router`` (consistent hashing over
the servers, drain = snapshot on the server + restore on the sequence's new owner).
"""

from __future__ import annotations

import argparse
import re

from edgernn.cli.options import integer, text

HELP = "Route sequence ids over Triton twin servers (consistent hashing); move every live sequence off one."
ADDRESS = re.compile(r"[A-Za-z0-9.\-]{1,253}:[0-9]{1,5}|\[[0-9A-Fa-f:.]{2,45}\]:[0-9]{1,5}")
EXAMPLE = "edgernn serve-route --servers 127.0.0.1:8001,127.0.0.1:9001 --model char_twin --drain 127.0.0.1:8001"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--servers", required=True, type=text(10_000), help="comma-separated host:port of the twin servers (the ring)"
    )
    p.add_argument("--model", default="char_twin", type=text(200), help="the twin model's name (default: char_twin)")
    p.add_argument("--protocol", choices=("grpc", "http"), default="grpc", help="client protocol (default: grpc)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--owner", type=integer(0, 2**63 - 1), nargs="+", metavar="ID", help="print the server each sequence id goes to"
    )
    what.add_argument("--status", action="store_true", help="print each server's live sequence ids")
    what.add_argument(
        "--drain", metavar="SERVER", type=text(200), help="move every live sequence off SERVER to its new owner"
    )


def main(args: argparse.Namespace) -> int:
    from edgernn.export.triton_route import RouteError, Router, TwinClient

    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if not servers:
        raise RouteError("--servers: give at least one host:port")
    for s in servers:
        if not ADDRESS.fullmatch(s):
            raise RouteError(f"--servers: {s[:80]!r} is not host:port (e.g. 127.0.0.1:8001)")
    try:
        router = Router([TwinClient(s, args.model, args.protocol) for s in servers])
    except ImportError:
        raise RouteError("serve-route needs tritonclient: pip install 'edgernn[triton]'") from None
    except RuntimeError as exc:  # tritonclient without its grpc part raises this at import
        if "grpc support" not in str(exc):
            raise
        raise RouteError("--protocol grpc: this tritonclient has no grpc support; use --protocol http") from None
    if args.owner:
        for corrid in args.owner:
            print(f"{corrid} -> {router.ring.owner(corrid)}")
    elif args.status:
        for s in servers:
            live = router.listed(s)
            print(f"{s}: {len(live)} live sequence(s) {live}")
    else:
        moved = router.drain(args.drain, ask_server=True)
        for corrid, target in moved.items():
            print(f"{corrid}: {args.drain} -> {target} ({1e3 * router.pauses[corrid]:.2f} ms)")
        print(f"drained {args.drain}: {len(moved)} sequence(s) moved; send their next requests to the new owners")
    return 0
