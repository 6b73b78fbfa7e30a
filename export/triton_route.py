"""Client side of the Triton twin: one client per server, a consistent-hash router, draining.

Triton cannot inject state into a sequence (triton-inference-server issue 7119), so moving a
live sequence needs the twin: ``snapshot`` (COMMAND "snapshot") takes the engine's snapshot
bytes off server A; ``restore`` (RESTORE with ``sequence_start``) starts the sequence on
server B at that state; then it is ended on A (``sequence_end``). A failed restore leaves it on A. ``Router`` sends each
correlation id to one server (a hash ring with virtual nodes: removing a server moves only
its own sequences) and ``Router.drain(server)`` moves every live sequence off ``server``
while the others keep streaming; a sequence's requests wait while it moves (its pause).

    >>> router = Router([TwinClient("127.0.0.1:8000", "char_twin"),
    ...                  TwinClient("127.0.0.1:9000", "char_twin")])  # doctest: +SKIP
    >>> y = router.step(42, np.array([5, 17]), start=True)            # (frames, vocab)
    >>> router.drain("127.0.0.1:8000")                                # moves seq 42 if it lives there

Needs ``tritonclient[http,grpc]`` (``pip install edgernn[triton]``); imported on first use.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from edgernn.export.errors import ExportError
from edgernn.export.triton_twin import COMMAND, INFO, RESTORE, SNAPSHOT
from edgernn.runtime.dtypes import TRITON

INFO_CORRID = 2**63 - 1  # reserved: an "info" request is a one-request sequence with this id
_TYPES = {name: triton.removeprefix("TYPE_") for name, triton in TRITON.items()}  # the client's spelling


class RouteError(ExportError):
    """A sequence cannot be routed or moved (no server left, unknown server)."""


class TwinClient:
    """Requests to one twin model on one server, over ``protocol`` 'http' or 'grpc'; one connection per thread."""

    def __init__(self, url: str, model: str, protocol: str = "http", input_name: str = "x", output_name: str = "y"):
        if protocol not in ("http", "grpc"):
            raise ValueError(f"protocol must be 'http' or 'grpc', got {protocol!r}")
        if protocol == "http":
            import tritonclient.http as tc
        else:
            import tritonclient.grpc as tc
        self.tc = tc
        self.url, self.model, self.protocol = url, model, protocol
        self._local = threading.local()
        self.input_name, self.output_name = input_name, output_name

    @property
    def client(self) -> Any:
        """This thread's tritonclient (the HTTP client is not safe to share between threads)."""
        c = getattr(self._local, "client", None)
        if c is None:
            c = self._local.client = self.tc.InferenceServerClient(self.url)
        return c

    def _bytes_input(self, name: str, value: bytes) -> Any:
        t = self.tc.InferInput(name, [1, 1], "BYTES")
        t.set_data_from_numpy(np.array([[value]], dtype=np.object_))
        return t

    def _infer(self, corrid: int, inputs: list[Any], output: str, start: bool, end: bool) -> Any:
        outputs = [self.tc.InferRequestedOutput(output)]
        return self.client.infer(
            self.model, inputs, outputs=outputs, sequence_id=corrid, sequence_start=start, sequence_end=end
        )

    def step(self, corrid: int, frames: np.ndarray, start: bool = False, end: bool = False) -> np.ndarray:
        """Send ``frames`` ``(T, ...)`` of sequence ``corrid``; the first output ``(T, ...)``."""
        frames = np.asarray(frames)
        x = self.tc.InferInput(self.input_name, [1, *frames.shape], _TYPES.get(frames.dtype.name, "FP32"))
        x.set_data_from_numpy(frames[None])
        return self._infer(corrid, [x], self.output_name, start, end).as_numpy(self.output_name)[0]

    def snapshot(self, corrid: int, end: bool = False) -> bytes:
        """The engine snapshot of sequence ``corrid``; with ``end`` the sequence ends on this server."""
        r = self._infer(corrid, [self._bytes_input(COMMAND, b"snapshot")], SNAPSHOT, False, end)
        return bytes(r.as_numpy(SNAPSHOT).reshape(-1)[0])

    def restore(self, corrid: int, blob: bytes) -> None:
        """Start sequence ``corrid`` on this server at the state in ``blob`` (a snapshot of the same model)."""
        self._infer(corrid, [self._bytes_input(RESTORE, blob)], self.output_name, True, False)

    def info(self) -> dict[str, Any]:
        """The twin instance's live CORRIDs, member count, state bytes and call counters."""
        r = self._infer(INFO_CORRID, [self._bytes_input(COMMAND, b"info")], INFO, True, True)
        return dict(json.loads(bytes(r.as_numpy(INFO).reshape(-1)[0])))

    def close(self) -> None:
        self.client.close()


def _hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


class HashRing:
    """Consistent hashing: each server owns ``vnodes`` points on a ring; a key goes to the next point."""

    def __init__(self, servers: Iterable[str] = (), vnodes: int = 64) -> None:
        self.vnodes = vnodes
        self._points: list[tuple[int, str]] = []
        for s in servers:
            self.add(s)

    @property
    def servers(self) -> list[str]:
        return sorted({s for _, s in self._points})

    def add(self, server: str) -> None:
        if server in self.servers:
            return
        for i in range(self.vnodes):
            bisect.insort(self._points, (_hash(f"{server}#{i}"), server))

    def remove(self, server: str) -> None:
        self._points = [p for p in self._points if p[1] != server]

    def owner(self, key: int | str) -> str:
        if not self._points:
            raise RouteError("no server left on the ring")
        i = bisect.bisect(self._points, (_hash(str(key)), "\uffff"))
        return self._points[i % len(self._points)][1]


class Router:
    """Sequences routed by correlation id over several twin servers; ``drain`` moves live ones away.

    Thread-safe: each sequence has a lock, so a step and a move of one sequence never overlap
    and different sequences run in parallel. ``clients`` are TwinClients keyed by their url.
    """

    def __init__(self, clients: Sequence[TwinClient], vnodes: int = 64) -> None:
        self.clients = {c.url: c for c in clients}
        self.ring = HashRing(self.clients, vnodes)
        self.home: dict[int, str] = {}  # live sequence -> server it lives on
        self.pauses: dict[int, float] = {}  # seconds each moved sequence was unavailable
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, corrid: int) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(corrid, threading.Lock())

    def step(self, corrid: int, frames: np.ndarray, start: bool = False, end: bool = False) -> np.ndarray:
        with self._lock(corrid):
            server = self.ring.owner(corrid) if start else self.home.get(corrid, self.ring.owner(corrid))
            out = self.clients[server].step(corrid, frames, start, end)
            with self._guard:
                if end:
                    self.home.pop(corrid, None)
                else:
                    self.home[corrid] = server
            return out

    def live_on(self, server: str) -> list[int]:
        with self._guard:
            return sorted(c for c, s in self.home.items() if s == server)

    def listed(self, server: str) -> list[int]:
        """The live CORRIDs the twin on ``server`` reports (COMMAND "info"); RouteError if it cannot answer."""
        if server not in self.clients:
            raise RouteError(f"unknown server {server!r}; routed servers: {sorted(self.clients)}")
        try:
            return [int(c) for c in self.clients[server].info()["corrids"]]
        except Exception as exc:  # tritonclient raises its own exception types
            raise RouteError(f"{server}: cannot list its live sequences ({exc})") from None

    def drain(self, server: str, ask_server: bool = False) -> dict[int, str]:
        """Take ``server`` off the ring and move each of its live sequences to its new owner.

        The live sequences are the ones this router started there, or with ``ask_server`` the ones
        the twin on ``server`` reports (a drain run by another process than the clients').
        Returns {corrid: new server}; ``pauses[corrid]`` holds how long each one was unavailable.
        """
        if server not in self.clients:
            raise RouteError(f"unknown server {server!r}; routed servers: {sorted(self.clients)}")
        if ask_server:
            for corrid in self.listed(server):
                with self._guard:
                    self.home[corrid] = server
        self.ring.remove(server)
        moved: dict[int, str] = {}
        for corrid in self.live_on(server):
            with self._lock(corrid):
                if self.home.get(corrid) != server:
                    continue  # ended (or moved) meanwhile
                target = self.ring.owner(corrid)
                t0 = time.perf_counter()
                try:
                    blob = self.clients[server].snapshot(corrid)
                    self.clients[target].restore(corrid, blob)
                except Exception as exc:  # tritonclient raises its own exception types
                    msg = f"sequence {corrid}: moving it from {server} to {target} failed ({exc}); it stays on {server}"
                    raise RouteError(msg) from None
                self.pauses[corrid] = time.perf_counter() - t0
                with self._guard:
                    self.home[corrid] = target
                moved[corrid] = target
            self.clients[server].snapshot(corrid, end=True)  # ends it on the old server, outside the pause
        return moved
