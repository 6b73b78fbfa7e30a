"""Issue 19 item 6: ``Engine.load(path, "cpu")`` is the runtime's CPU defaults; other names say how to load them."""

from __future__ import annotations

import numpy as np
import pytest
from appcli import shipped

from edgernn.runtime import Engine
from edgernn.runtime.errors import ProfileError
from edgernn.runtime.session import CpuDefaults


def test_cpu_by_name_is_the_default_profile() -> None:
    path = shipped("weather")
    named, default = Engine.load(path, "cpu"), Engine.load(path)
    assert isinstance(named.profile, CpuDefaults) and named.profile.name == default.profile.name == "cpu"
    frames = np.random.default_rng(0).standard_normal((20, *named.input.shape[2:])).astype(np.float32)
    a, b = named.stream().push(frames), default.stream().push(frames)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("name", ["cuda", "openvino", "cuda-graph", "CPU"])
def test_other_profile_names_say_how_to_load_them(name) -> None:
    path = shipped("weather")
    with pytest.raises(ProfileError) as info:
        Engine.load(path, name)
    msg = str(info.value)
    assert f"profile {name!r}" in msg and f"edgernn.devices.load_engine({str(path)!r}, {name!r})" in msg
