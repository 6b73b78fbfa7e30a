"""edgernn.devices: device profiles (TOML) turned into onnxruntime session options and providers.

>>> from edgernn.devices import load_profile, profile_names
>>> "cuda-graph" in profile_names() and load_profile("cuda-graph").cuda_graph
True
"""

from edgernn.devices.placement import FallbackWarning, PlacementReport, load_engine
from edgernn.devices.profiles import DeviceProfile, load_profile, parse_profile, profile_names

__all__ = [
    "DeviceProfile",
    "FallbackWarning",
    "PlacementReport",
    "load_engine",
    "load_profile",
    "parse_profile",
    "profile_names",
]
