"""Device profiles: TOML files in this folder, turned into objects the runtime can load with.

A profile is data, not a code path: which execution providers (in order) and their options,
threads, graph optimisation level, precision, where the recurrent state lives (``device``)
and whether a fallback is an error (``strict``). ``load_profile("cuda")`` reads
``devices/cuda.toml``; any ``.toml`` path works too. The result implements
``edgernn.runtime.session.SessionProfile``, so ``Engine.load(path, profile)`` takes it.

Example:
    >>> from edgernn.devices.profiles import load_profile
    >>> p = load_profile("cpu")
    >>> p.providers()
    [('CPUExecutionProvider', {})]
    >>> p.strict, p.device, p.threads
    (False, 'cpu', 1)

TOML needs ``tomllib`` (Python 3.11+); on 3.10 the ``tomli`` backport is a conditional
dependency in pyproject.toml (``tomli; python_version < '3.11'``), the same parser.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnxruntime as ort

from edgernn.runtime.errors import ProfileError

if TYPE_CHECKING:
    from edgernn.runtime.engine import Engine

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

PROFILE_DIR = Path(__file__).resolve().parent
DEVICES = ("cpu", "cuda")
PRECISIONS = ("fp32", "fp16", "int8")
# Which graph `edgernn export` makes for the provider (edgernn.export.forms / quantize): the fp32
# form ("auto" branches between the decomposed cell and the native op: the CPU provider; "native"
# keeps the RNN / GRU / LSTM op: GPU and NPU providers run it, not a Scan) and the int8 form
# ("dynamic": DynamicQuantizeMatMul / DynamicQuantizeLSTM, CPU-provider contrib ops; "qdq": static
# QuantizeLinear / DequantizeLinear around plain MatMuls, one step per call (edgernn.export.qdq), what
# OpenVINO and the NPU stacks compile; "none": the provider has no int8 path edgernn makes).
FORMS = ("auto", "native", "decomposed")
INT8_FORMS = ("dynamic", "qdq", "none")
OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
EXECUTION_MODES = {"sequential": ort.ExecutionMode.ORT_SEQUENTIAL, "parallel": ort.ExecutionMode.ORT_PARALLEL}
TOP_KEYS = (
    "name",
    "description",
    "device",
    "precision",
    "strict",
    "threads",
    "inter_op_threads",
    "form",
    "int8_form",
    "graph_optimization",
    "execution_mode",
    "memory_pattern",
    "allow_on_cpu",
    "session_config",
    "providers",
)
PROVIDER_KEYS = ("name", "options")
CPU_EP = "CPUExecutionProvider"
GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")
# Every provider name onnxruntime knows of (built here or not), plus the ones newer builds add.
KNOWN_PROVIDERS = tuple(sorted(set(ort.get_all_providers()) | {"CPUExecutionProvider", "OpenVINOExecutionProvider"}))

# Provider options we check by name, for the providers whose option set is documented and stable.
# A typo here would be ignored by onnxruntime (OpenVINO even falls back to the CPU silently), so
# it is an error. Providers not in this table have their options passed through unchecked.
PROVIDER_OPTIONS: dict[str, frozenset[str]] = {
    "CPUExecutionProvider": frozenset({"use_arena"}),
    "CUDAExecutionProvider": frozenset(
        """device_id gpu_mem_limit arena_extend_strategy cudnn_conv_algo_search do_copy_in_default_stream
        cudnn_conv_use_max_workspace cudnn_conv1d_pad_to_nc1d enable_cuda_graph enable_skip_layer_norm_strict_mode
        use_tf32 prefer_nhwc tunable_op_enable tunable_op_tuning_enable tunable_op_max_tuning_duration_ms
        user_compute_stream has_user_compute_stream use_ep_level_unified_stream fuse_conv_bias sdpa_kernel""".split()
    ),
    "TensorrtExecutionProvider": frozenset(
        """device_id trt_max_workspace_size trt_fp16_enable trt_bf16_enable trt_int8_enable trt_engine_cache_enable
        trt_engine_cache_path trt_timing_cache_enable trt_timing_cache_path trt_builder_optimization_level
        trt_cuda_graph_enable trt_max_partition_iterations trt_min_subgraph_size trt_dump_subgraphs
        trt_force_sequential_engine_build trt_context_memory_sharing_enable trt_layer_norm_fp32_fallback
        trt_auxiliary_streams trt_profile_min_shapes trt_profile_max_shapes trt_profile_opt_shapes
        user_compute_stream has_user_compute_stream trt_detailed_build_log trt_build_heuristics_enable
        trt_sparsity_enable trt_dla_enable trt_dla_core trt_engine_hw_compatible""".split()
    ),
    "OpenVINOExecutionProvider": frozenset(
        """device_type precision num_of_threads cache_dir enable_opencl_throttling enable_qdq_optimizer
        disable_dynamic_shapes num_streams load_config model_priority reshape_input layout""".split()
    ),
}

# Why a provider may be missing here, and what brings it.
WHY_MISSING: dict[str, str] = {
    "CUDAExecutionProvider": "needs the onnxruntime-gpu package (pip install 'edgernn[gpu]') and an NVIDIA GPU",
    "TensorrtExecutionProvider": "needs onnxruntime-gpu, an NVIDIA GPU and the TensorRT libraries",
    "OpenVINOExecutionProvider": "onnxruntime-openvino, which replaces onnxruntime: its own venv (make openvino)",
    "CoreMLExecutionProvider": "only in onnxruntime builds for macOS and iOS",
    "NnapiExecutionProvider": "only in onnxruntime builds for Android (onnxruntime-android)",
    "XnnpackExecutionProvider": "not in the default wheel: Android/iOS packages or a build with --use_xnnpack",
    "QNNExecutionProvider": "onnxruntime-qnn, for Qualcomm SoCs (Windows on Snapdragon, Android): no Linux x86 wheel",
    "DmlExecutionProvider": "onnxruntime-directml, Windows only: no Linux wheel",
}


def _option_text(value: Any) -> str:
    """onnxruntime takes provider options as strings: booleans become '1' / '0'."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


@dataclass(frozen=True)
class ProviderEntry:
    """One execution provider of a profile and its options (as onnxruntime reads them: strings)."""

    name: str
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DeviceProfile:
    """A parsed profile; implements ``SessionProfile`` (``name``, ``device``, ``session_options``, ``providers``)."""

    name: str
    description: str
    device: str
    precision: str
    strict: bool
    threads: int
    inter_op_threads: int
    graph_optimization: str
    execution_mode: str
    memory_pattern: bool
    session_config: dict[str, str]
    provider_entries: tuple[ProviderEntry, ...]
    allow_on_cpu: tuple[str, ...] = ()  # op types a strict load lets the CPU provider run (e.g. "Shape")
    source: str = "<memory>"
    form: str = "native"  # the fp32 graph export makes for it (FORMS)
    int8_form: str = "none"  # the int8 graph export makes for it (INT8_FORMS)
    profiling_prefix: str | None = None  # set by placement checks: profile the first run, then stop

    # -- SessionProfile ----------------------------------------------------------------

    def session_options(self) -> ort.SessionOptions:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = self.inter_op_threads
        opts.execution_mode = EXECUTION_MODES[self.execution_mode]
        opts.graph_optimization_level = OPT_LEVELS[self.graph_optimization]
        opts.enable_mem_pattern = self.memory_pattern
        opts.log_severity_level = 3
        for key, value in self.session_config.items():
            opts.add_session_config_entry(key, value)
        if self.profiling_prefix is not None:
            opts.enable_profiling = True
            opts.profile_file_prefix = self.profiling_prefix
        return opts

    def providers(self) -> list[tuple[str, dict[str, str]]]:
        out = [(p.name, dict(p.options)) for p in self.provider_entries]
        if self.device == "cuda":
            from edgernn.devices.cuda import stream_options

            out = [(name, {**stream_options(name, opts), **opts}) for name, opts in out]
        return out

    @property
    def stream_factory(self) -> Callable[[Engine], Any] | None:
        """The runtime's stream hook: ``device = "cuda"`` keeps state on the GPU (``devices.cuda``)."""
        if self.device != "cuda":
            return None
        from edgernn.devices.cuda import make_stream

        return make_stream

    # -- facts -------------------------------------------------------------------------

    @property
    def provider_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.provider_entries)

    @property
    def cuda_graph(self) -> bool:
        """True when the profile asks the CUDA provider to capture and replay CUDA graphs."""
        return any(
            p.name == "CUDAExecutionProvider" and p.options.get("enable_cuda_graph") == "1"
            for p in self.provider_entries
        )

    @property
    def device_id(self) -> int:
        for p in self.provider_entries:
            if "device_id" in p.options:
                return int(p.options["device_id"])
        return 0

    def missing_providers(self) -> list[tuple[str, str]]:
        """``(provider, reason)`` for each provider of this profile that this onnxruntime build lacks."""
        here = set(ort.get_available_providers())
        out = [(n, WHY_MISSING.get(n, "not in this onnxruntime build")) for n in self.provider_names if n not in here]
        gpu = [n for n in self.provider_names if n in here and n in GPU_PROVIDERS]
        if gpu:
            from edgernn.devices.cuda import no_device_reason

            reason = no_device_reason()
            out += [(n, reason) for n in gpu] if reason else []
        return out

    def allowed_providers(self) -> tuple[str, ...]:
        """Where nodes may run without it counting as a fallback: the listed providers.

        The CPU provider counts only if the profile lists it.
        """
        return self.provider_names

    def with_changes(self, **changes: Any) -> DeviceProfile:
        """A copy with some fields replaced (``strict``, ``threads``, ``profiling_prefix`` …)."""
        from dataclasses import replace

        return replace(self, **changes)


# -- parsing -------------------------------------------------------------------------------


def _pick(where: str, key: str, value: Any, choices: Any) -> str:
    if value not in choices:
        raise ProfileError(f"{where}: {key} = {value!r} is not one of {', '.join(map(repr, choices))}")
    return str(value)


def _typed(where: str, key: str, value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if isinstance(value, bool) and kind is not bool:
        raise ProfileError(f"{where}: {key} must be {what}, got {value!r}")
    if not isinstance(value, kind):
        raise ProfileError(f"{where}: {key} must be {what}, got {value!r}")
    return value


def _provider(where: str, i: int, raw: Any) -> ProviderEntry:
    here = f"{where}: providers[{i}]"
    if not isinstance(raw, dict):
        raise ProfileError(f"{here} must be a table with 'name' and 'options', got {raw!r}")
    unknown = sorted(set(raw) - set(PROVIDER_KEYS))
    if unknown:
        raise ProfileError(f"{here}: unknown key(s) {unknown}; valid keys: {', '.join(PROVIDER_KEYS)}")
    name = raw.get("name")
    if name not in KNOWN_PROVIDERS:
        raise ProfileError(f"{here}: unknown provider {name!r}; valid providers: {', '.join(KNOWN_PROVIDERS)}")
    options = _typed(here, "options", raw.get("options", {}), dict, "a table")
    valid = PROVIDER_OPTIONS.get(name)
    if valid is not None:
        bad = sorted(set(options) - valid)
        if bad:
            raise ProfileError(f"{here}: unknown option(s) {bad} for {name}; valid options: {', '.join(sorted(valid))}")
    for key, value in options.items():
        if isinstance(value, (dict, list)):
            raise ProfileError(f"{here}: option {key!r} must be a string, number or boolean, got {value!r}")
    return ProviderEntry(name, {k: _option_text(v) for k, v in options.items()})


def parse_profile(data: dict[str, Any], source: str = "<memory>") -> DeviceProfile:
    """Check a profile's table and build it; every error names the file, the key and the valid values."""
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise ProfileError(f"{source}: unknown key(s) {unknown}; valid keys: {', '.join(TOP_KEYS)}")
    if "name" not in data or "providers" not in data:
        raise ProfileError(f"{source}: a profile needs 'name' and at least one [[providers]] table")
    name = _typed(source, "name", data["name"], str, "a string")
    raw_providers = _typed(source, "providers", data["providers"], list, "a list of [[providers]] tables")
    if not raw_providers:
        raise ProfileError(f"{source}: providers is empty; name at least one provider")
    entries = tuple(_provider(source, i, p) for i, p in enumerate(raw_providers))
    names = [p.name for p in entries]
    if len(set(names)) != len(names):
        raise ProfileError(f"{source}: a provider is listed twice: {names}")
    device = _pick(source, "device", data.get("device", "cpu"), DEVICES)
    first_is_cpu = names[0] == CPU_EP
    strict_default = not (device == "cpu" and first_is_cpu)
    threads = _typed(source, "threads", data.get("threads", 1), int, "an integer >= 0 (0: onnxruntime's default)")
    inter = _typed(source, "inter_op_threads", data.get("inter_op_threads", 1), int, "an integer >= 0")
    if threads < 0 or inter < 0:
        raise ProfileError(f"{source}: threads and inter_op_threads must be >= 0, got {threads} and {inter}")
    config = _typed(source, "session_config", data.get("session_config", {}), dict, "a table of strings")
    allow = _typed(source, "allow_on_cpu", data.get("allow_on_cpu", []), list, "a list of operator types")
    if not all(isinstance(op, str) for op in allow):
        raise ProfileError(f"{source}: allow_on_cpu must list operator types as strings, got {allow!r}")
    return DeviceProfile(
        name=name,
        description=_typed(source, "description", data.get("description", ""), str, "a string"),
        device=device,
        precision=_pick(source, "precision", data.get("precision", "fp32"), PRECISIONS),
        strict=_typed(source, "strict", data.get("strict", strict_default), bool, "true or false"),
        threads=threads,
        inter_op_threads=inter,
        graph_optimization=_pick(source, "graph_optimization", data.get("graph_optimization", "all"), OPT_LEVELS),
        execution_mode=_pick(source, "execution_mode", data.get("execution_mode", "sequential"), EXECUTION_MODES),
        memory_pattern=_typed(source, "memory_pattern", data.get("memory_pattern", True), bool, "true or false"),
        session_config={str(k): _option_text(v) for k, v in config.items()},
        provider_entries=entries,
        allow_on_cpu=tuple(allow),
        source=source,
        form=_pick(source, "form", data.get("form", "native"), FORMS),
        int8_form=_pick(source, "int8_form", data.get("int8_form", "none"), INT8_FORMS),
    )


def profile_names() -> list[str]:
    """The names of the profiles shipped in ``devices/``, sorted, ``cpu`` first."""
    names = sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))
    return sorted(names, key=lambda n: (n != "cpu", n))


def load_profile(name_or_path: str | Path) -> DeviceProfile:
    """A shipped profile by name (``"cuda"``) or any profile file by path (``"my.toml"``)."""
    text = str(name_or_path)
    path = Path(text) if text.endswith(".toml") else PROFILE_DIR / f"{text}.toml"
    if not path.is_file():
        if text.endswith(".toml"):
            raise ProfileError(f"{text}: no such profile file")
        raise ProfileError(f"unknown device profile {text!r}; valid profiles: {', '.join(profile_names())}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}") from None
    profile = parse_profile(data, str(path))
    if not text.endswith(".toml") and profile.name != path.stem:
        raise ProfileError(f"{path}: name = {profile.name!r} differs from the file name {path.stem!r}")
    return profile
