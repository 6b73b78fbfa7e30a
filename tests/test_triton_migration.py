"""Sequences that move between two real tritonservers mid-stream: a consistent-hash router sends each
correlation id to one server; draining server A snapshots every live sequence there and restores it
on B. Outputs equal an uninterrupted run with zero steps lost. Run by `make triton`."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from tritonhelp import chunks, make_repository, reference, server_venv

from edgernn.export.triton_route import HashRing, RouteError, Router, TwinClient
from edgernn.export.triton_server import LocalTriton

pytestmark = pytest.mark.triton
VOCAB = 78


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory):
    venv = server_venv()
    repo = make_repository(tmp_path_factory.mktemp("repo"))
    a = LocalTriton(repo, venv=venv, models=["char_twin"])
    b = LocalTriton(repo, venv=venv, models=["char_twin"])
    try:
        a.start()
        b.start()
        groups = [a.pid, b.pid]
        yield a, b
    finally:
        a.cleanup()
        b.cleanup()
        assert not a.running() and not b.running()
    assert all(g is not None and not LocalTriton.group_alive(g) for g in groups)  # nothing left running


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_draining_a_moves_every_live_sequence_to_b_mid_stream(two_servers, protocol) -> None:
    a, b = two_servers
    urls = (a.http_url, b.http_url) if protocol == "http" else (a.grpc_url, b.grpc_url)
    plans = {2000 + i: chunks(seed=50 + i, total=30 + 3 * i, vocab=VOCAB) for i in range(12)}
    router = Router([TwinClient(u, "char_twin", protocol) for u in urls])
    on_a = [c for c in plans if router.ring.owner(c) == urls[0]]
    assert 0 < len(on_a) < len(plans)  # the ring spreads the sequences over both servers
    got: dict[int, list[np.ndarray]] = {c: [] for c in plans}
    halfway = threading.Barrier(len(plans) + 1)
    moved = threading.Event()
    errors: list[BaseException] = []

    def run(corrid: int) -> None:
        try:
            parts = plans[corrid]
            for k, frames in enumerate(parts):
                if k == len(parts) // 2:
                    halfway.wait(60)  # every sequence is live and mid-stream; the drain starts now
                if k == len(parts) // 2 + 2:
                    moved.wait(60)  # a few requests race the drain, the rest come after it
                got[corrid].append(router.step(corrid, frames, start=k == 0, end=k == len(parts) - 1))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
            halfway.abort()

    threads = [threading.Thread(target=run, args=(c,)) for c in plans]
    for t in threads:
        t.start()
    try:
        halfway.wait(60)
    except threading.BrokenBarrierError:
        raise AssertionError(f"a sequence failed before the drain: {errors[:1]}") from None
    live_a = TwinClient(urls[0], "char_twin", protocol).info()["corrids"]
    result = router.drain(urls[0])
    moved.set()
    for t in threads:
        t.join(120)
    assert not errors, errors[0]
    assert sorted(result) == sorted(live_a) and set(live_a) <= set(on_a) and live_a
    assert set(result.values()) == {urls[1]}
    worst, steps = 0.0, 0
    for corrid, parts in plans.items():
        y = np.concatenate(got[corrid])
        want = reference(parts)
        assert y.shape == want.shape  # zero steps lost: every frame sent got its output
        worst = max(worst, float(np.abs(y - want).max()))
        steps += len(y)
    pauses = sorted(1e3 * p for p in router.pauses.values())
    print(f"{protocol}: drained {len(result)} of {len(plans)} live sequences A -> B mid-stream; {steps} steps, "
          f"max |diff| vs uninterrupted {worst:.2e}; pause per sequence median {pauses[len(pauses) // 2]:.2f} ms, "
          f"max {pauses[-1]:.2f} ms")
    assert worst <= 1e-6
    assert TwinClient(urls[0], "char_twin", protocol).info()["corrids"] == []  # A holds nothing any more
    assert TwinClient(urls[1], "char_twin", protocol).info()["corrids"] == []  # every sequence ended on B
    with pytest.raises(RouteError, match="unknown server"):
        router.drain("127.0.0.1:1")


def test_serve_route_cli_drains_a_server_it_did_not_route(two_servers, capsys) -> None:
    from edgernn.cli import main

    a, b = two_servers
    servers = f"{a.grpc_url},{b.grpc_url}"
    plans = {3000 + i: chunks(seed=70 + i, total=20, vocab=VOCAB) for i in range(4)}
    on_a, on_b = TwinClient(a.grpc_url, "char_twin", "grpc"), TwinClient(b.grpc_url, "char_twin", "grpc")
    got = {c: [on_a.step(c, p[0], start=True)] for c, p in plans.items()}  # the clients' own placement: all on A
    assert main(["serve-route", "--servers", servers, "--status"]) == 0
    assert f"{a.grpc_url}: 4 live sequence(s) [3000, 3001, 3002, 3003]" in capsys.readouterr().out
    assert main(["serve-route", "--servers", servers, "--drain", a.grpc_url]) == 0
    out = capsys.readouterr().out
    assert f"drained {a.grpc_url}: 4 sequence(s) moved" in out
    for c, p in plans.items():  # the rest of each sequence on B
        got[c] += [on_b.step(c, f, end=k == len(p) - 1) for k, f in enumerate(p[1:], start=1)]
        assert float(np.abs(np.concatenate(got[c]) - reference(p)).max()) <= 1e-6
    assert on_a.info()["corrids"] == [] and on_b.info()["corrids"] == []
    assert main(["serve-route", "--servers", servers, "--owner", "7", "8"]) == 0
    owners = capsys.readouterr().out.splitlines()
    assert owners == [f"7 -> {HashRing(servers.split(',')).owner(7)}", f"8 -> {HashRing(servers.split(',')).owner(8)}"]
    assert main(["serve-route", "--servers", "no port", "--owner", "1"]) == 1
    assert "is not host:port" in capsys.readouterr().err
