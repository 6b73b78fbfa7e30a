"""The translation rows of docs/TRAINING_RESULTS.md: held-out chrF of the TM-augmented encoder-decoder
(the shipped model) and of the plain one (greedy and beam) beside copying the source and a translation
memory, split by how similar the memory's nearest source is; and the pairs per language."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

# the shipped model's own recipe (TM-augmented): `make models` trains the same run (fixed steps, one
# thread); beside it the plain encoder-decoder (no suggestion) at the budget it had
RUNS: list[tuple[str, dict[str, Any]]] = [
    ("translate", {"task": "shipped-translate"}),
    ("translate-plain", {"task": "shipped-translate", "tm": False, "max_steps": 700}),
]
COUNT_LANGS = ("de", "fr", "es", "it", "ru", "sv", "uk", "pl", "ja", "zh_CN", "pt_BR", "nl", "ar")


def write_pair_counts(out: Path) -> dict[str, Any]:
    """Pairs per language in each kind of catalog (kept as ``pairs.json`` beside the run)."""
    from edgernn.train.data_translate import pair_counts

    report = {kind: pair_counts((kind,), COUNT_LANGS) for kind in ("django", "system")}
    (out / "pairs.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def _loss_trend(path: Path) -> tuple[float, float] | None:
    """Mean logged training loss over the first and the last quarter of the run's logged rows."""
    if not path.exists():
        return None
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    losses = [r["loss"] for r in rows if "loss" in r]
    if len(losses) < 8:
        return None
    q = len(losses) // 4
    return sum(losses[:q]) / q, sum(losses[-q:]) / q


def _budget(c: dict[str, Any], env: dict[str, Any]) -> str:
    t = c["train"]
    load = f", load average {env['load_start']}→{env['load_end']}, {env['wall_s']:.0f} s wall" if env else ""
    return f"{t['max_steps']} updates of {t['batch_size']} pairs, {env.get('threads', 1)} thread{load}"


def _rows(label: str, m: dict[str, Any], bold: bool) -> list[str]:
    g = f"**{m['chrf_greedy']:.2f}**" if bold else f"{m['chrf_greedy']:.2f}"
    return [f"| {label}, greedy | {g} | {m['chrf_greedy_beam_pairs']:.2f} |",
            f"| {label}, beam 4 | | {m['chrf_beam']:.2f} ({m['beam_pairs']} pairs) |"]  # fmt: skip


def _similarity(m: dict[str, Any], plain: dict[str, Any] | None) -> list[str]:
    if "similar_pairs" not in m:
        return []
    from edgernn.train.translate_eval import SIMILAR

    has_plain = plain is not None and "similar_pairs" in plain
    head = "| system | " + f"Dice ≥ {SIMILAR} ({m['similar_pairs']} pairs) | below ({m['dissimilar_pairs']} pairs) |"
    model = "TM-augmented encoder–decoder" if has_plain else "the model"
    lines = ["Where the gain comes from: chrF (greedy) on the held-out pairs split by the 3-gram Dice similarity "
             "of the memory's nearest training source.", "", head, "|---|---|---|",
             f"| {model} | {m['chrf_greedy_similar']:.2f} | {m['chrf_greedy_dissimilar']:.2f} |"]  # fmt: skip
    if has_plain and plain is not None:
        lines.append(f"| plain encoder–decoder | {plain['chrf_greedy_similar']:.2f} | "
                     f"{plain['chrf_greedy_dissimilar']:.2f} |")  # fmt: skip
    lines += [f"| translation memory | {m['chrf_memory_similar']:.2f} | {m['chrf_memory_dissimilar']:.2f} |", ""]
    return lines


def _logged(path: Path) -> dict[int, float]:
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def _same_batches(runs_dir: Path) -> str:
    """Both runs draw the same batches in the same order (same seed and targets): their logged losses
    at the steps both logged compare the models on equal data (the plain run's rate decays sooner)."""
    tm = _logged(runs_dir / "translate" / "metrics.jsonl")
    plain = _logged(runs_dir / "translate-plain" / "metrics.jsonl")
    steps = sorted(set(tm) & set(plain))
    if len(steps) < 8:
        return ""
    a, b = (sum(d[s] for s in steps) / len(steps) for d in (tm, plain))
    return (f" On the same batches (same seed and order; the {len(steps)} steps both logged, up to update {steps[-1]}) "
            f"the mean logged training loss was {a:.3f} with the suggestion and {b:.3f} without, though the plain "
            "run's learning rate had decayed sooner.")  # fmt: skip


def section(load: Callable[[str], Any], runs_dir: Path) -> list[str]:
    got = load("translate")
    if got is None:
        return []
    m, c, env = got
    t = c["train"]
    tm = bool(t.get("tm"))
    plain_run = load("translate-plain") if tm else None
    plain = plain_run[0] if plain_run else None
    pairs_path = runs_dir / "translate" / "pairs.json"
    counts = json.loads(pairs_path.read_text()) if pairs_path.exists() else {}
    beats = m["chrf_greedy"] > m["chrf_memory"]
    trend = _loss_trend(runs_dir / "translate" / "metrics.jsonl")
    name = "TM-augmented encoder–decoder" if tm else "GRU encoder–decoder"
    lines = [
        "## Translation (English → German, gettext catalogs, `edgernn train translate`)",
        "",
        f"A character GRU encoder–decoder with dot-product attention (bidirectional GRU {t['hidden_size'] // 2} per "
        f"direction, decoder GRU {t['hidden_size']}), {_budget(c, env)}. Pairs: the catalogs of Django and of the "
        f"system's packages (`/usr/share/locale`); {m['train_pairs']} training pairs, {m['test_pairs']} held out, "
        "split by unique source string (equal after lower-casing, collapsing whitespace and dropping placeholders: "
        "one side). Placeholders are markers on every side. chrF: character 1..6-grams, beta 2 "
        "(`train/translate_eval.py`).",
        "",
    ]
    if tm:
        lines += [
            "The shipped model is **TM-augmented** (neural fuzzy repair, Bulte & Tezcan 2019): its encoder reads the "
            "source, a separator and the translation memory's suggestion (the translation of the nearest training "
            "source by 3-gram Dice), and the decoder learns what to copy and what to change. In training a pair's "
            "suggestion comes from the nearest *other* training pair with a different split key, as a held-out "
            "pair's does (held-out sources are never in the memory). The memory (the training pairs) ships beside "
            "the model, `runtime/models/translate-memory.json.gz`; the app looks the suggestion up the same way.",
            "",
        ]
    lines += ["| system | chrF, all held-out pairs | chrF, the beam subset |", "|---|---|---|"]
    lines += _rows(name, m, bold=True)
    if plain is not None and plain_run is not None:
        lines += _rows(f"plain encoder–decoder (no suggestion; {_budget(plain_run[1], plain_run[2])})", plain, False)
    lines += [
        f"| translation memory (nearest training source, 3-gram Dice) | {m['chrf_memory']:.2f} | "
        f"{m['chrf_memory_beam_pairs']:.2f} |",
        f"| copy the source | {m['chrf_copy']:.2f} | |",
        "",
        (
            f"The model beats the translation memory: {m['chrf_greedy'] - m['chrf_memory']:+.2f} chrF (greedy, all "
            f"pairs; beam 4 {m['chrf_beam'] - m['chrf_memory_beam_pairs']:+.2f} on its subset)."
            if beats
            else f"The model does not beat the translation memory: {m['chrf_memory'] - m['chrf_greedy']:.2f} chrF "
            "short "
            f"(greedy, all pairs). Tried: {'the plain encoder–decoder and ' if plain else ''}this configuration "
            "within the budget (about "
            f"{t['max_steps'] * t['batch_size'] / m['train_pairs']:.1f} passes over the training pairs); beam search "
            f"gains {m['chrf_beam'] - m['chrf_greedy_beam_pairs']:+.2f} chrF over greedy on its subset."
        )
        + (
            f" The training loss (mean of the logged batches) was still falling: {trend[0]:.3f} over the first "
            f"quarter of the run, {trend[1]:.3f} over the last."
            if trend and trend[1] < trend[0]
            else ""
        ),  # fmt: skip
        "",
    ]
    if plain_run is not None and plain_run[1]["train"]["max_steps"] != t["max_steps"]:
        lines += [f"The plain row is the earlier run at its own, smaller budget ({plain_run[1]['train']['max_steps']} "
                  f"updates against {t['max_steps']}): not an equal-budget comparison."
                  + _same_batches(runs_dir), ""]  # fmt: skip
    lines += _similarity(m, plain)
    if counts:
        langs = sorted(set(counts.get("django", {})) | set(counts.get("system", {})),
                       key=lambda k: -(counts["django"].get(k, 0) + counts["system"].get(k, 0)))  # fmt: skip
        lines += ["Pairs kept per target language (before the split):", "",
                  "| language | Django | system catalogs |", "|---|---|---|"]  # fmt: skip
        lines += [f"| {k} | {counts['django'].get(k, 0)} | {counts['system'].get(k, 0)} |" for k in langs]
        lines.append("")
    return lines
