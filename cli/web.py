"""``edgernn web``: a static site that streams a model in the browser, and a server for it."""

from __future__ import annotations

import argparse
import time

from edgernn.cli.options import integer, text

HELP = "Put a model on a web page: the JS engine on onnxruntime-web, app pages; serve it on 127.0.0.1."
EXAMPLE = "edgernn web edgernn/runtime/models/langid.onnx -o site/ && edgernn web serve site/ --port 8000"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", nargs="+", type=text(4096), help="MODEL.onnx to build a site, or: serve DIR")
    p.add_argument("-o", "--out", default="site", type=text(4096), help="the folder to write the site into")
    p.add_argument(
        "--ort", type=text(4096), help="onnxruntime-web's dist folder (default: make web's install, $EDGERNN_ORT_DIR)"
    )
    p.add_argument(
        "--spec", type=text(4096), help="a spec.json for a model without one in its metadata (edgernn spec -o)"
    )
    p.add_argument(
        "--port", type=integer(0, 65_535), default=8000, help="serve: the port on 127.0.0.1 (0: any free one)"
    )


def main(args: argparse.Namespace) -> int:
    from edgernn.web.site import WebError, build_site, serve

    if args.target[0] == "serve":
        if len(args.target) != 2:
            raise WebError("usage: edgernn web serve DIR [--port N]")
        if not 0 <= args.port <= 65535:
            raise WebError(f"--port must be 0..65535, got {args.port}")
        server = serve(args.target[1], args.port)
        print(f"serving {args.target[1]} on http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)", flush=True)
        try:
            while True:
                time.sleep(3600)
        finally:
            server.shutdown()
    if len(args.target) != 1:
        raise WebError("usage: edgernn web MODEL.onnx -o DIR")
    written = build_site(args.target[0], args.out, args.ort, spec=args.spec)
    print("wrote " + ", ".join(str(w) for w in written))
    print(f"next: edgernn web serve {args.out}")
    return 0
