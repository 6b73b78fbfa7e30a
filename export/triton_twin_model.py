"""Triton Python-backend model: the edgernn engine behind Triton's sequence batcher (the "twin").

This file is copied verbatim as ``<repo>/<name>_twin/1/model.py`` by ``edgernn export --triton``;
it runs ``1/model.onnx`` (the edge graph, stream spec in its metadata) with ``edgernn.runtime``,
which must be importable in the server's Python (``pip install edgernn``: numpy + onnxruntime).

Triton's Python backend ignores ``sequence_batching { state ... }``, so the twin keeps each
sequence's state itself: one ``Batch`` per model instance, one member per live sequence keyed by
the CORRID control input. Per request of one ``execute`` call:

- READY = 0 (a filler of the ``direct`` strategy): answered, no member touched;
- START = 1: the member is created (or reset); with a RESTORE input its state is the snapshot's;
- the frames of every stepping request run as one ragged ``Batch.step_many`` call;
- END = 1: the member is closed after its step (its state buffers freed);
- COMMAND "snapshot": the member's ``Stream.snapshot()`` bytes in output SNAPSHOT;
  COMMAND "info": JSON (live CORRIDs, members, state bytes) in output INFO.

Triton is not told when it drops a sequence idle past ``max_sequence_idle_microseconds``;
the Batch's ``idle_after`` is that same value, and idle members are evicted on every call and
by a timer thread. A request with bad input gets an error naming the problem; it never changes
another sequence's state (inputs are checked per request before the batched call).
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from edgernn.runtime import Engine
from edgernn.runtime.errors import EdgeRNNError

CONTROLS = ("START", "END", "READY", "CORRID")


def _scalar(request: Any, name: str, default: int = 0) -> int:
    t = pb_utils.get_input_tensor_by_name(request, name)
    return default if t is None else int(t.as_numpy().reshape(-1)[0])


def _bytes(request: Any, name: str) -> bytes | None:
    t = pb_utils.get_input_tensor_by_name(request, name)
    if t is None:
        return None
    value = t.as_numpy().reshape(-1)
    if value.size != 1:
        raise EdgeRNNError(f"input {name!r}: expected one BYTES element, got {value.size}")
    item = value[0]
    return item if isinstance(item, bytes) else str(item).encode()


class TritonPythonModel:
    """One instance: one Engine, one Batch, members keyed by CORRID."""

    def initialize(self, args: dict[str, Any]) -> None:
        config = json.loads(args["model_config"])
        folder = os.path.join(args["model_repository"], args["model_version"])
        self.engine = Engine.load(os.path.join(folder, "model.onnx"))
        sb = config.get("sequence_batching", {})
        idle_us = int(sb.get("max_sequence_idle_microseconds", 0) or 0)
        self.idle_after = idle_us / 1e6 if idle_us > 0 else None
        slots = int(config.get("max_batch_size", 0) or 1)
        slots = max(slots, int(sb.get("oldest", {}).get("max_candidate_sequences", 0) or 0))
        self.lock = threading.Lock()
        self.members: dict[int, Any] = {}
        self.batch = self.engine.batch(max_streams=slots, idle_after=self.idle_after, on_evict=self._forget)
        self.output_names = [o["name"] for o in config["output"]]
        self.y_name = self.engine.spec.outputs[0].name
        self.calls = self.stepped = self.max_in_call = 0  # batched engine calls, requests in them, most in one
        self.fillers = 0  # READY = 0 requests answered without touching a member
        self.stop = threading.Event()
        self.timer = None
        if self.idle_after is not None:
            self.timer = threading.Thread(target=self._evict_loop, daemon=True)
            self.timer.start()

    # -- idle sequences -------------------------------------------------------------------

    def _forget(self, stream: Any) -> None:
        for corrid, s in list(self.members.items()):
            if s is stream:
                del self.members[corrid]

    def _evict_loop(self) -> None:
        if self.idle_after is None:  # started only when the config sets an idle limit
            raise EdgeRNNError("the twin's eviction loop needs max_sequence_idle_microseconds in its config")
        period = min(max(self.idle_after / 4, 0.01), 1.0)
        while not self.stop.wait(period):
            with self.lock:
                self.batch.evict_idle()

    # -- requests --------------------------------------------------------------------------

    def execute(self, requests: list[Any]) -> list[Any]:
        with self.lock:
            self.batch.evict_idle()
            results: list[Any] = [None] * len(requests)
            pending = list(range(len(requests)))
            while pending:  # one round per occurrence of a CORRID in this call (normally one round)
                seen: set[int] = set()
                now: list[int] = []
                later: list[int] = []
                for i in pending:
                    corrid = _scalar(requests[i], "CORRID")
                    (later if corrid in seen and _scalar(requests[i], "READY", 1) else now).append(i)
                    seen.add(corrid)
                self._round(requests, now, results)
                pending = later
            return [self._response(r) for r in results]

    def _round(self, requests: list[Any], idx: list[int], results: list[Any]) -> None:
        stepping: dict[Any, Any] = {}
        owners: dict[int, Any] = {}
        for i in idx:
            try:
                results[i] = self._prepare(requests[i], i, stepping, owners)
            except EdgeRNNError as exc:
                results[i] = pb_utils.TritonError(str(exc))
        if stepping:
            self.calls += 1
            self.stepped += len(stepping)
            self.max_in_call = max(self.max_in_call, len(stepping))
            try:
                outs = self.batch.step_many(stepping)
            except EdgeRNNError as exc:  # checked per request above; this is a failure of the call itself
                for i in owners:
                    results[i] = pb_utils.TritonError(f"batched step failed: {exc}")
                return
            for i, stream in owners.items():
                results[i]["y"] = outs[stream]
        for i in idx:
            r = results[i]
            if isinstance(r, dict):
                self._finish(requests[i], r)

    def _prepare(self, request: Any, i: int, stepping: dict[Any, Any], owners: dict[int, Any]) -> dict[str, Any]:
        """Check one request and set its member up; raise EdgeRNNError (the request's error) on bad input."""
        wanted = set(request.requested_output_names()) or set(self.output_names)
        out: dict[str, Any] = {"wanted": wanted}
        if not _scalar(request, "READY", 1):
            self.fillers += 1
            return out  # a filler slot: no member is touched
        corrid = _scalar(request, "CORRID")
        start, end = _scalar(request, "START"), _scalar(request, "END")
        raw_command = _bytes(request, "COMMAND")
        command = raw_command.decode(errors="replace") if raw_command is not None else None
        if command not in (None, "", "snapshot", "info"):
            raise EdgeRNNError(f"input 'COMMAND': expected 'snapshot' or 'info', got {command!r}")
        restore = _bytes(request, "RESTORE")
        frames = self._frames(request)
        if restore is not None and not start:
            raise EdgeRNNError("input 'RESTORE': a restore must be the sequence's first request (sequence_start)")
        member = self.members.get(corrid)
        if command == "info" and member is None and start:
            out["end_only"] = True
            return out
        if start:
            fresh = self.engine.stream()
            if restore is not None:
                fresh.restore(restore)  # SnapshotError names the problem; nothing joined yet
            if member is not None:
                member.close()
            member = self.batch.join(fresh)
            self.members[corrid] = member
        elif member is None:
            raise EdgeRNNError(
                f"sequence {corrid} has no state in this instance (ended, idle past "
                f"{self.idle_after}s or never started here); send it again with sequence_start"
            )
        out.update(corrid=corrid, end=end, command=command, member=member)
        if frames is not None:
            stepping[member] = frames
            owners[i] = member
        return out

    def _frames(self, request: Any) -> Any:
        """The request's frames checked by the engine (None when it carries none)."""
        given = {}
        for t in self.engine.spec.inputs:
            tensor = pb_utils.get_input_tensor_by_name(request, t.name)
            if tensor is None:
                continue
            arr = tensor.as_numpy()
            if arr.ndim < 2 or arr.shape[0] != 1:
                raise EdgeRNNError(f"input {t.name!r}: a sequence request carries (1, frames, ...), got {arr.shape}")
            given[t.name] = arr[0]
        if not given or all(a.shape[0] == 0 for a in given.values()):
            return None
        if not self.engine.multi_input:
            return self.engine.check_many(given[self.engine.input.name])
        return self.engine.check_many(given)

    def _finish(self, request: Any, r: dict[str, Any]) -> None:
        del request
        member = r.get("member")
        if member is None:
            return
        if r["command"] == "snapshot":
            r["snapshot"] = member.snapshot()
        if r["end"]:
            member.close()
            self.members.pop(r["corrid"], None)

    def _info(self) -> bytes:
        bufs = getattr(self.batch, "_bufs", [])  # the Batch's lane buffers (two per state: ping-pong)
        state_bytes = sum(a.nbytes for pair in bufs for a in pair)
        return json.dumps(
            {"corrids": sorted(self.members), "members": len(self.batch), "state_bytes": int(state_bytes),
             "pid": os.getpid(), "idle_after": self.idle_after, "calls": self.calls, "stepped": self.stepped,
             "max_in_call": self.max_in_call, "fillers": self.fillers}
        ).encode()

    def _response(self, r: Any) -> Any:
        if isinstance(r, pb_utils.TritonError):
            return pb_utils.InferenceResponse(output_tensors=[], error=r)
        wanted = r["wanted"]
        tensors = []
        if self.y_name in wanted:
            y = r.get("y")
            if y is None:
                y = self.engine.empty_output()
            tensors.append(pb_utils.Tensor(self.y_name, np.ascontiguousarray(y[None])))
        if "SNAPSHOT" in wanted:
            tensors.append(pb_utils.Tensor("SNAPSHOT", np.array([[r.get("snapshot", b"")]], dtype=np.object_)))
        if "INFO" in wanted:
            info = self._info() if r.get("command") == "info" or r.get("end_only") else b""
            tensors.append(pb_utils.Tensor("INFO", np.array([[info]], dtype=np.object_)))
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def finalize(self) -> None:
        self.stop.set()
        with self.lock:
            self.batch.close()
            self.members.clear()
