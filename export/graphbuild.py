"""The node builder behind ``edgernn.export.decomposed``: fp32 MatMul / Gemm or int8 DynamicQuantizeMatMul
products (one or two int8 parts per weight), their initializers, unique names."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MS_DOMAIN = "com.microsoft"


class Builder:
    """Collects nodes and initializers; ``matmul`` writes fp32 MatMul(+Add) or DynamicQuantizeMatMul."""

    def __init__(self, quantize: bool, residual: bool = False, qdq: dict[str, float] | None = None) -> None:
        self.quantize = quantize or qdq is not None
        self.residual = residual
        # static QDQ (``edgernn.export.qdq``): each product's activation range (max |a|) by its stem
        self.qdq = qdq
        self.offset = True  # the accurate form's products quantize (a + 1) / 2 (set per cell)
        self.inits: list[TensorProto] = []
        self.count = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def const(self, stem: str, value: np.ndarray) -> str:
        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.array(value, order="C"), name))
        return name

    def matmul(
        self,
        nodes: list[onnx.NodeProto],
        a: str,
        w: np.ndarray,
        bias: np.ndarray | None,
        stem: str,
        fp32: bool = False,
        out: str = "",
        add: str = "",
        gemm: bool = False,
    ) -> str:
        """a @ w (+ bias) (+ the tensor ``add``) into ``out`` (a new name by default); ``w`` is (in, out).
        int8 when the builder quantizes, unless ``fp32``. ``gemm`` (``a`` 2-D, fp32): one Gemm node
        with the bias or ``add`` as its C, not MatMul + Add(s) — fewer nodes per Scan iteration."""
        out = out or self.name(stem)
        if self.qdq is not None and not fp32:
            return self._qdq(nodes, a, w, bias, stem, out, add)
        if self.quantize and not fp32 and self.residual:
            full = np.zeros(w.shape[1]) if bias is None else np.asarray(bias, np.float64)
            return self._residual(nodes, a, w, full, stem, out, add)
        b = self.const(f"{stem}_b", np.asarray(bias, np.float32)) if bias is not None else ""
        if gemm and not (self.quantize and not fp32) and not (b and add):
            c = add or b
            ins = [a, self.const(f"{stem}_w", w.astype(np.float32))] + ([c] if c else [])
            nodes.append(helper.make_node("Gemm", ins, [out]))
            return out
        prod = self.name(f"{stem}_mm") if (b or add) else out
        if self.quantize and not fp32:
            # per-tensor: per-column scales were slower and, on trained char models,
            # not accurate enough either (LSTM 256: 0.026 max |dp|); the two-part form is
            q, scale = int8_weights(w)
            ins = [a, self.const(f"{stem}_wq", q), self.const(f"{stem}_ws", np.array(scale, np.float32))]
            ins += [self.const(f"{stem}_wz", np.array(0, np.int8)), b]
            prod = self.name(f"{stem}_mm") if add else out
            nodes.append(helper.make_node("DynamicQuantizeMatMul", ins, [prod], domain=MS_DOMAIN))
            if add:
                nodes.append(helper.make_node("Add", [prod, add], [out]))
            return out
        nodes.append(helper.make_node("MatMul", [a, self.const(f"{stem}_w", w.astype(np.float32))], [prod]))
        if b and add:
            mid = self.name(f"{stem}_mb")
            nodes.append(helper.make_node("Add", [prod, b], [mid]))
            nodes.append(helper.make_node("Add", [mid, add], [out]))
        elif b or add:
            nodes.append(helper.make_node("Add", [prod, b or add], [out]))
        return out

    def _qdq(
        self, nodes: list[onnx.NodeProto], a: str, w: np.ndarray, bias: np.ndarray | None, stem: str, out: str, add: str
    ) -> str:
        """Static QDQ: ``a`` through QuantizeLinear / DequantizeLinear (uint8, zero point 128, scale
        max|a| / 127 from calibration: +-max|a| exact, as an int8 symmetric range), the weight int8
        per output column through DequantizeLinear (axis 1), a plain MatMul (+ bias, + ``add``).
        The pattern NPU / OpenVINO / QNN quantizers look for; onnxruntime's CPU provider fuses it.

        ``residual`` (the accurate QDQ form): the weight in two int8 parts and the activation in two
        uint8 parts, each second part its first one's rounding at scale / 254; three products (a1 w1,
        a1 w2, a2 w1; a2 w2 is below both roundings), what trained models with states saturated at
        +-1 need (their per-step rounding otherwise builds up along the carried state)."""
        ranges = self.qdq or {}
        if stem not in ranges:
            raise KeyError(f"no calibrated range for the product {stem!r}")
        amax = max(float(ranges[stem]), 1e-6)
        z_a = self.const(f"{stem}_az", np.array(128, np.uint8))
        weights = []  # one int8 part per weight, or two: the second the first one's rounding at s / 254
        q, scales = int8_columns(w)
        rest = w.astype(np.float64) - q * scales.astype(np.float64)
        for i, (qi, si) in enumerate([(q, scales)] + ([_rounding(rest, scales)] if self.residual else [])):
            wd = self.name(f"{stem}_wd{i}")
            ws, wz = self.const(f"{stem}_ws{i}", si), self.const(f"{stem}_wz{i}", np.zeros(w.shape[1], np.int8))
            nodes.append(helper.make_node("DequantizeLinear", [self.const(f"{stem}_wq{i}", qi), ws, wz], [wd], axis=1))
            weights.append(wd)
        parts, src = [], a
        acts = [amax / 127.0, amax / 127.0 / 254.0][: 2 if self.residual else 1]
        for i, scale in enumerate(acts):
            s_a = self.const(f"{stem}_as{i}", np.array(scale, np.float32))
            aq, ad = self.name(f"{stem}_aq{i}"), self.name(f"{stem}_ad{i}")
            nodes.append(helper.make_node("QuantizeLinear", [src, s_a, z_a], [aq]))
            nodes.append(helper.make_node("DequantizeLinear", [aq, s_a, z_a], [ad]))
            for j, wd in enumerate(weights if i == 0 else weights[:1]):  # the rest times the rest: negligible
                parts.append(self.name(f"{stem}_mm{i}{j}"))
                nodes.append(helper.make_node("MatMul", [ad, wd], [parts[-1]]))
            if i + 1 < len(acts):  # what the first part's rounding left
                src = self.name(f"{stem}_rest")
                nodes.append(helper.make_node("Sub", [a, ad], [src]))
        b = self.const(f"{stem}_b", np.asarray(bias, np.float32)) if bias is not None else ""
        terms = [t for t in (add, b) if t]
        if len(parts) + len(terms) == 1 and nodes[-1].op_type == "MatMul":
            nodes[-1].output[0] = out
        else:
            nodes.append(helper.make_node("Sum", [*parts, *terms], [out]))
        return out

    def _residual(
        self, nodes: list[onnx.NodeProto], a: str, w: np.ndarray, bias: np.ndarray, stem: str, out: str, add: str = ""
    ) -> str:
        """Two int8 parts, each a per-tensor DynamicQuantizeMatMul, added: the second quantizes the
        first one's rounding (|w - q1 s1| <= s1 / 2) at s1 / 254, so what is left is <= max|w| / 64,516
        and the activation's uint8 rounding is what remains. With ``offset`` the parts are of 2w and
        take u = (a + 1) / 2: (u - 1/2) @ (q1 s1 + q2 s2) = a @ w up to the parts' rounding, the
        -1/2 sum(q s) folded into the bias (module docstring)."""
        if self.offset:
            parts = two_parts(2.0 * w.astype(np.float64))
            offset = 0.5 * np.sum([q.astype(np.float64) * sc for q, sc in parts], axis=0).sum(axis=0)
            u = self.name(f"{stem}_u")
            nodes.append(helper.make_node("HardSigmoid", [a], [u], alpha=0.5, beta=0.5))  # (a + 1) / 2 on [-1, 1]
        else:
            parts, offset, u = two_parts(w.astype(np.float64)), np.zeros(w.shape[1]), a
        names = []
        for i, (q, sc) in enumerate(parts):
            ins = [u, self.const(f"{stem}_wq{i}", q), self.const(f"{stem}_ws{i}", np.array(sc, np.float32))]
            ins += [self.const(f"{stem}_wz{i}", np.array(0, np.int8))]
            ins += [self.const(f"{stem}_b", (bias - offset).astype(np.float32))] if i == 0 else []
            names.append(self.name(f"{stem}_part{i}"))
            nodes.append(helper.make_node("DynamicQuantizeMatMul", ins, [names[-1]], domain=MS_DOMAIN))
        nodes.append(helper.make_node("Sum", [add, *names], [out]) if add else helper.make_node("Add", names, [out]))
        return out


def _rounding(rest: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The second int8 part of a per-column weight: its first part's rounding ``rest`` at scale / 254."""
    s2 = scales.astype(np.float64) / 254.0
    return np.clip(np.round(rest / s2), -127, 127).astype(np.int8), s2.astype(np.float32)


def int8_weights(w: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-tensor symmetric int8: q, scale with w ~ q * scale."""
    scale = np.array(max(float(np.abs(w).max()), 1e-12) / 127.0)  # float64: w / scale rounds in float64
    return np.clip(np.round(w / scale), -127, 127).astype(np.int8), float(scale)


def int8_columns(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column symmetric int8 of ``w`` (in, out): q (int8), scales (out,) float32, w ~ q * scales."""
    scale = np.maximum(np.abs(w.astype(np.float64)).max(axis=0), 1e-12) / 127.0
    q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)


def two_parts(w: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """w ~ q1 s1 + q2 s2: the second part quantizes the first one's rounding at s1 / 254."""
    q1, s1 = int8_weights(w)
    s2 = s1 / 254.0
    q2 = np.clip(np.round((w - q1 * s1) / s2), -127, 127).astype(np.int8)
    return [(q1, s1), (q2, s2)]
