"""The Python-backend twin of a Triton repository: the same model, served by the edgernn engine.

Triton's onnxruntime backend (the production path, ``export/triton.py``) keeps the recurrent
state on the server through ``sequence_batching { state ... }``. The Python backend ignores that
block, so the twin carries the state in the model itself (``triton_twin_model.py``, copied as
``model.py``): one ``Batch`` per instance, one member per sequence keyed by the CORRID control.
Its config declares the four sequence controls, optional RESTORE / COMMAND inputs and the
SNAPSHOT / INFO outputs that move a sequence between servers.

Layout written next to the onnxruntime model::

    DIR/<name>_twin/config.pbtxt
    DIR/<name>_twin/1/model.py      (export/triton_twin_model.py)
    DIR/<name>_twin/1/model.onnx    (the edge graph: stream spec in its metadata)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx

from edgernn.runtime.dtypes import TRITON
from edgernn.runtime.spec import BATCH, TIME, StreamSpec

TWIN_SUFFIX = "_twin"
STRATEGIES = ("direct", "oldest")
TEMPLATE = Path(__file__).with_name("triton_twin_model.py")
# Extra tensors of the twin (each request carries batch 1, so each is (1, 1) BYTES on the wire).
RESTORE, COMMAND, SNAPSHOT, INFO = "RESTORE", "COMMAND", "SNAPSHOT", "INFO"


def _dims(shape: tuple) -> str:
    return ", ".join("-1" if d == TIME else str(d) for d in shape if d != BATCH)


def twin_config_pbtxt(
    spec: StreamSpec,
    name: str,
    max_batch_size: int = 64,
    strategy: str = "direct",
    idle_microseconds: int = 60_000_000,
    queue_delay_microseconds: int = 1000,
    instances: int = 1,
) -> str:
    """The twin's ``config.pbtxt``: Python backend, sequence controls START/END/READY/CORRID."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    lines = [f'name: "{name}"', 'backend: "python"', f"max_batch_size: {max_batch_size}", "input ["]
    tensors = [f'{{ name: "{t.name}" data_type: {TRITON[t.dtype]} dims: [ {_dims(t.shape)} ] optional: true }}'
               for t in spec.inputs]
    tensors += [f'{{ name: "{n}" data_type: TYPE_STRING dims: [ 1 ] optional: true }}' for n in (RESTORE, COMMAND)]
    lines += ["  " + ",\n  ".join(tensors), "]", "output ["]
    y = spec.outputs[0]
    tensors = [f'{{ name: "{y.name}" data_type: {TRITON[y.dtype]} dims: [ {_dims(y.shape)} ] }}']
    tensors += [f'{{ name: "{n}" data_type: TYPE_STRING dims: [ 1 ] }}' for n in (SNAPSHOT, INFO)]
    lines += ["  " + ",\n  ".join(tensors), "]", "sequence_batching {"]
    lines.append(f"  max_sequence_idle_microseconds: {idle_microseconds}")
    if strategy == "direct":
        lines.append(f"  direct {{ max_queue_delay_microseconds: {queue_delay_microseconds} }}")
    else:
        lines.append(
            f"  oldest {{ max_candidate_sequences: {max_batch_size} "
            f"max_queue_delay_microseconds: {queue_delay_microseconds} }}"
        )
    controls = [
        f'{{ name: "{c}" control [ {{ kind: CONTROL_SEQUENCE_{c} int32_false_true: [ 0, 1 ] }} ] }}'
        for c in ("START", "END", "READY")
    ]
    controls.append('{ name: "CORRID" control [ { kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_UINT64 } ] }')
    lines += ["  control_input [", "    " + ",\n    ".join(controls), "  ]", "}"]
    lines += [f"instance_group [ {{ count: {instances} kind: KIND_CPU }} ]", ""]
    return "\n".join(lines)


def write_twin(
    folder: Path,
    proto: onnx.ModelProto,
    spec: StreamSpec,
    name: str,
    max_batch_size: int = 64,
    strategy: str = "direct",
    idle_microseconds: int = 60_000_000,
    queue_delay_microseconds: int = 1000,
    instances: int = 1,
) -> Path:
    """Write the twin model into ``folder`` (created; the caller stages and renames it)."""
    (folder / "1").mkdir(parents=True)
    onnx.save(proto, str(folder / "1" / "model.onnx"))
    shutil.copyfile(TEMPLATE, folder / "1" / "model.py")
    text = twin_config_pbtxt(
        spec, name, max_batch_size, strategy, idle_microseconds, queue_delay_microseconds, instances
    )
    (folder / "config.pbtxt").write_text(text)
    return folder
