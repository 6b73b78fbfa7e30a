"""The TRAINING_RESULTS section of the models that ship in the package (``runtime/models``).

Written from the models themselves: ``make models`` trains each by a fixed recipe and
``export --validate`` stores the checkpoint's held-out metrics and the parity report in the
model's metadata, so the figures are the shipped file's own, and no run directory is needed::

    python -m edgernn.train.results --only shipped     # rewrite this section alone
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MODELS = Path(__file__).resolve().parent.parent / "runtime" / "models"


def model_facts(task: str, models: Path = MODELS) -> tuple[dict[str, Any], int] | None:
    """(the stream spec as a dict, the file's size in bytes) of the shipped ``task`` model."""
    import onnxruntime as ort

    from edgernn.runtime.spec import StreamSpec

    path = models / f"{task}.onnx"
    if not path.is_file():
        return None
    meta = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta()
    spec = StreamSpec.from_metadata(meta.custom_metadata_map)
    return {"config": spec.model, "task": dict(spec.task), "provenance": dict(spec.provenance)}, path.stat().st_size


def _model_line(facts: dict[str, Any], size: int) -> str:
    c = facts["config"]
    cfg = f"{c.cell.upper()} {c.hidden_size}x{c.num_layers}" if c is not None else "a model"
    return f"{cfg}, {size / 1e6:.2f} MB on disk"


def section(models: Path = MODELS) -> list[str]:
    lines = [
        "## The shipped models (`runtime/models`, `make models`)",
        "",
        "Read from the shipped files' own metadata (held-out metrics and parity, stored by"
        " `export --validate`); `make models` rebuilds them by fixed recipes (seed 0, a fixed number"
        " of updates, one thread), the same bytes on the same kind of CPU.",
        "",
    ]
    tg = model_facts("textgen", models)
    if tg:
        facts, size = tg
        m, parity = facts["provenance"]["metrics"], facts["provenance"].get("parity", {})
        words = len(facts["task"].get("words") or [])
        lines += [
            f"**textgen** ({_model_line(facts, size)}): {m['valid_bpc']:.3f} bits per character on the"
            f" held-out KJV text ({m['valid_chars']:,} characters) against the smoothed 5-gram's"
            f" {m['5gram_bpc']:.3f} (bigram {m['bigram_bpc']:.3f}, unigram {m['unigram_bpc']:.3f}):"
            f" {'beats' if m['valid_bpc'] < m['5gram_bpc'] else 'does not beat'} the 5-gram;"
            f" {m['steps']} updates. Parity ONNX vs PyTorch over {parity.get('steps', '?')} carried steps:"
            f" max |diff| {parity.get('max_abs', float('nan')):.2e}. `run suggest` completes to its"
            f" {words:,} words of the training text (`spec.task['words']`).",
            "",
        ]
    li = model_facts("langid", models)
    if li:
        facts, size = li
        m = facts["provenance"]["metrics"]
        lines += _langid_unknown(facts, size, m)
    return lines


def _langid_unknown(facts: dict[str, Any], size: int, m: dict[str, Any]) -> list[str]:
    if "unknown_below" not in m:
        return []
    from edgernn.runtime.apps.langid import NAMES
    from edgernn.train.langid import UNKNOWN_COST

    unseen = sorted({k.split("_")[1] for k in m if k.startswith("unseen_") and k.endswith("_unknown")})
    rows = [
        f"| {NAMES.get(lang, lang)} ({lang}) | {m[f'unseen_{lang}_strings']} | {m[f'unseen_{lang}_unknown']:.3f}"
        f" | {m[f'unseen_{lang}_else']} |"
        for lang in unseen
    ]
    mean = sum(m[f"unseen_{lang}_unknown"] for lang in unseen) / max(len(unseen), 1)
    return [
        f'**langid** ({_model_line(facts, size)}): "unknown" when the top probability is below'
        f" {m['unknown_below']:.4f} or more than {facts['task'].get('unknown_chars_above', 0):.0%} of the"
        " characters are outside the vocabulary. The limit is calibrated on half of the known languages'"
        f' test strings (the highest that turns at most {UNKNOWN_COST:.0%} of them from right answers into "unknown");'
        " the figures below are on the other half and on languages of the same Django catalogs the model"
        " was never trained on (whole strings).",
        "",
        "| known languages (20), other half of the test strings | strings | accuracy | right and not unknown |"
        " unknown |",
        "|---|---|---|---|---|",
        f'| without "unknown" → with it | {m["known_strings"]:,} | {m["known_acc"]:.3f} |'
        f" {m['known_acc_with_unknown']:.3f} | {m['known_unknown_rate']:.3f} |",
        "",
        f"The accuracy cost on the known languages: {m['known_acc'] - m['known_acc_with_unknown']:.3f}"
        f" ({m['known_acc']:.3f} → {m['known_acc_with_unknown']:.3f}).",
        "",
        '| language never trained on | strings | answered "unknown" | otherwise most often |',
        "|---|---|---|---|",
        *rows,
        "",
        f'Mean over these {len(unseen)} languages: {mean:.3f} answered "unknown". Scripts the model never'
        " saw (Hindi, Thai) are caught by the character rule; close relatives of a trained language"
        " (Ukrainian and Bulgarian → Russian, Slovak → Czech, Danish and Norwegian → Swedish) mostly are"
        " not: the model is confident in the relative.",
        "",
    ]
