"""edgernn.web: the browser as one more edge. A JavaScript engine (``edgernn.mjs``) that streams any
exported model on onnxruntime-web with the same spec and snapshot bytes as the Python engine, the
pages that use it, and the site builder / server behind ``edgernn web``."""
