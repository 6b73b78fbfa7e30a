"""Build a static site that streams a model in the browser, and serve it on 127.0.0.1.

    edgernn web model.onnx -o site/       # the model, model.json, the JS engine, the pages, onnxruntime-web
    edgernn web serve site/               # http://127.0.0.1:PORT/ with cross-origin isolation (threads)

``model.json`` holds the stream spec (onnxruntime-web does not expose ONNX metadata, and the JS
engine can also read it from the bytes) and the snapshot identity: the header fields of a
snapshot the Python engine writes for this model, so page and Python exchange snapshots.
onnxruntime-web's two files are copied from a local npm install (``make web``).
"""

from __future__ import annotations

import functools
import html
import http.server
import json
import os
import shutil
import struct
import threading
from pathlib import Path

from edgernn.runtime import Engine
from edgernn.runtime.errors import EdgeRNNError
from edgernn.runtime.snapshot import FORMAT as SNAPSHOT_FORMAT
from edgernn.runtime.spec import StreamSpec
from edgernn.runtime.specfile import read_spec

HERE = Path(__file__).resolve().parent
ORT_FILES = ("ort.wasm.bundle.min.mjs", "ort-wasm-simd-threaded.wasm")
PAGES = ("stream.html", "parity.html")  # every site; plus the app page of the model's task:
APP_PAGES = {"langid": "langid.html", "textgen": "textgen.html"}
MODULES = ("edgernn.mjs", "wire.mjs", "suggest.mjs")
ORT_VERSION = "1.30.0"


class WebError(EdgeRNNError):
    """The site cannot be built or served: what is missing and how to get it."""


def ort_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where onnxruntime-web's dist files are: ``explicit``, $EDGERNN_ORT_DIR, or ``make web``'s install."""
    for cand in (explicit, os.environ.get("EDGERNN_ORT_DIR"), HERE / "node_modules" / "onnxruntime-web" / "dist"):
        if cand and all((Path(cand) / f).is_file() for f in ORT_FILES):
            return Path(cand)
    raise WebError(f"onnxruntime-web {ORT_VERSION} is not installed here: run `make web` in the edgernn checkout "
                   f"(npm ci in web/), or `npm install onnxruntime-web@{ORT_VERSION}` and pass --ort "
                   "node_modules/onnxruntime-web/dist")  # fmt: skip


def snapshot_identity(engine: Engine) -> dict:
    """The format and the header fields (all but the tensors) of this model's snapshots."""
    blob = engine.stream().snapshot()
    magic = 12
    fmt, head_len = struct.unpack_from("<II", blob, magic)
    header = json.loads(blob[magic + 8 : magic + 8 + head_len])
    header.pop("tensors", None)
    return {"format": fmt, "header": header}


def build_site(
    model: str | os.PathLike[str],
    out: str | os.PathLike[str],
    ort: str | None = None,
    spec: StreamSpec | str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Write the site for ``model`` into ``out``; the files written.

    ``spec``: a StreamSpec or a spec.json (``edgernn spec -o``) for a model without one in its metadata.
    """
    if spec is not None and not isinstance(spec, StreamSpec):
        spec = read_spec(spec)
    engine = Engine.load(model, spec=spec)
    src = ort_dir(ort)
    dest = Path(out)
    dest.mkdir(parents=True, exist_ok=True)
    written = [Path(shutil.copyfile(model, dest / "model.onnx"))]
    site = {
        "spec": json.loads(engine.spec.to_json()),
        "snapshot": {**snapshot_identity(engine), **({"memoryFormat": SNAPSHOT_FORMAT} if engine.spec.memory else {})},
        "engine": {"window": engine.window},  # a window the graph fixes (the spec's, else its time axis)
    }
    (dest / "model.json").write_text(json.dumps(site))
    written.append(dest / "model.json")
    app = APP_PAGES.get(str(engine.spec.task.get("name")))
    pages = (*PAGES, app) if app else PAGES
    for name in (*MODULES, *pages):
        written.append(Path(shutil.copyfile(HERE / name, dest / name)))
    (dest / "index.html").write_text(index_page(Path(model).name, [app, "stream.html"] if app else ["stream.html"]))
    written.append(dest / "index.html")
    for name in ORT_FILES:
        written.append(Path(shutil.copyfile(src / name, dest / name)))
    return written


def index_page(model: str, pages: list[str]) -> str:
    """The site's front page: links to its pages, the app first."""
    links = "".join(f'<li><a href="{p}">{p.removesuffix(".html")}</a></li>' for p in pages)
    return (f'<!doctype html><meta charset="utf-8"><title>edgernn: {html.escape(model)}</title>'
            f"<h1>{html.escape(model)} in the browser</h1><ul>{links}</ul>\n")  # fmt: skip


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".mjs": "text/javascript",
        ".wasm": "application/wasm",
        ".onnx": "application/octet-stream",
    }

    def end_headers(self) -> None:
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")  # threads need cross-origin isolation
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, *args: object) -> None:
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except ConnectionError:  # the page went away mid-transfer (closed by the test or the driver)
            pass


def serve(root: str | os.PathLike[str], port: int = 0) -> http.server.ThreadingHTTPServer:
    """Serve ``root`` on 127.0.0.1 (``port`` 0: a free one) from a background thread; call ``shutdown()``."""
    if not Path(root, "model.json").is_file():
        raise WebError(f"{root}: not an edgernn site (no model.json); build one with `edgernn web MODEL -o DIR`")
    handler = functools.partial(_Handler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
