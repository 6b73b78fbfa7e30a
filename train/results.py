"""Regenerate docs/TRAINING_RESULTS.md: every task's figures beside its baselines.

    python -m edgernn.train.results               # train every run (about 45 min on 2 cores), then write
    python -m edgernn.train.results --only recall --jobs 2 --threads 1  # one task, two runs at once
    python -m edgernn.train.results --render      # only rewrite the table from the runs on disk
    python -m edgernn.train.results --only shipped  # only the shipped models' section (from their metadata)

Runs go to ``runs/results/<name>`` (each a normal run directory); the table is written
from their ``metrics.json`` and ``config.json``, with the machine's load while they ran.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RUNS = Path("runs/results")
TABLE = Path("docs/TRAINING_RESULTS.md")
RECALL_CELLS = ("rnn", "gru", "lstm")
RECALL_DELAYS = (5, 10, 20, 40, 80)
RECALL_STEPS = {5: 3000, 10: 3000, 20: 3000, 40: 3000, 80: 3000}  # one budget: only the delay changes
RECALL_SEEDS = (0, 1, 2)
USUAL_BIAS = {"gru": 0.0, "lstm": 1.0}  # update / forget gate bias without memory_bias


def run_names(only: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """(run name, preset overrides) of every run in the table."""
    small = {"hidden_size": 256, "batch_size": 32, "max_seconds": 0.0, "max_steps": 800}
    runs: list[tuple[str, dict[str, Any]]] = [
        ("textgen", {}),
        ("textgen-ab-plain", {**small, "lr_final": 1.0}),
        ("textgen-ab-cosine", small),
        ("textgen-ab-fp32", {**small, "precision": "fp32"}),
        ("textgen-constant", {"lr_final": 1.0}),  # the full budget with a constant rate
        ("langid", {}),
        ("weather", {}),
    ]
    for k in RECALL_DELAYS:  # longer delays get more updates: gated cells sit at chance for a while first
        for seed in RECALL_SEEDS:
            runs += [
                (f"recall-{c}-{k}-s{seed}", {"cell": c, "delay": k, "max_steps": RECALL_STEPS[k], "seed": seed})
                for c in RECALL_CELLS
            ]
    for seed in RECALL_SEEDS:  # the same at delay 40 with the gates' usual initial biases
        for c, bias in USUAL_BIAS.items():
            runs.append((f"recall-{c}-40-usual-s{seed}", {"cell": c, "delay": 40, "max_steps": RECALL_STEPS[40],
                                                          "seed": seed, "memory_bias": bias}))  # fmt: skip
    from edgernn.train.results_attention import RUNS as ATTENTION_RUNS
    from edgernn.train.results_forecast import RUNS as FORECAST_RUNS
    from edgernn.train.results_music import RUNS as MUSIC_RUNS
    from edgernn.train.results_translate import RUNS as TRANSLATE_RUNS

    runs += FORECAST_RUNS + MUSIC_RUNS + ATTENTION_RUNS + TRANSLATE_RUNS
    wanted = None if only is None else set(only.split(","))
    return [(n, o) for n, o in runs if wanted is None or n.split("-")[0] in wanted]


def train_one(name: str, overrides: dict[str, Any], threads: int) -> None:
    import torch

    from edgernn.train.tasks import build_task, recipe
    from edgernn.train.trainer import fit

    torch.set_num_threads(threads)
    overrides = dict(overrides)
    cfg = recipe(overrides.pop("task", name.split("-")[0]), **overrides)
    out = RUNS / name
    for old in ("metrics.jsonl", "metrics.json"):
        (out / old).unlink(missing_ok=True)
    load0 = os.getloadavg()[0]
    t0 = time.time()
    res = fit(build_task(cfg), cfg, out=out, overwrite=True)  # a rerun replaces the run
    env = {
        "threads": threads,
        "load_start": round(load0, 2),
        "load_end": round(os.getloadavg()[0], 2),
        "wall_s": round(time.time() - t0, 1),
        "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
    }
    (out / "environment.json").write_text(json.dumps(env, indent=2) + "\n")
    if cfg.task == "forecast":
        from edgernn.train.results_forecast import write_baselines

        write_baselines(cfg, out)
    if name.startswith("attention-text"):
        from edgernn.train.results_attention import export_run

        export_run(out)
    if cfg.task == "music":
        from edgernn.train.results_music import write_key_report

        write_key_report(out)
    if cfg.task == "translate":
        from edgernn.train.results_translate import write_pair_counts

        write_pair_counts(out)
    print(f"{name}: {res.metrics}")


def _load(name: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]] | None:
    d = RUNS / name
    if not (d / "metrics.json").exists():
        return None
    env = json.loads((d / "environment.json").read_text()) if (d / "environment.json").exists() else {}
    return json.loads((d / "metrics.json").read_text()), json.loads((d / "config.json").read_text()), env


def _model(cfg: dict[str, Any]) -> str:
    m, t = cfg["model"], cfg["train"]
    budget = f"{t['max_steps']} updates" if t["max_steps"] else f"{t['max_seconds']:.0f} s"
    precision = t.get("precision", "fp32")
    return f"{m['cell'].upper()} {m['hidden_size']}x{m['num_layers']}, batch {t['batch_size']}, {precision}, {budget}"


def _recipe(cfg: dict[str, Any]) -> str:
    t = cfg["train"]
    schedule = "constant" if t["lr_final"] == 1.0 else f"cosine to {t['lr_final']:g}x"
    return f"Adam {t['lr']:g}, warm-up {t['warmup_steps']} updates, then {schedule}; clip {t['clip']:g}"


def _env(env: dict[str, Any]) -> str:
    if not env:
        return ""
    return f"{env['threads']} thread(s), load average {env['load_start']}→{env['load_end']}, {env['finished']}"


def render() -> str:
    lines = [
        "# Training results",
        "",
        "Generated by `python -m edgernn.train.results` (see `train/results.py`); every figure is on held-out",
        "data. The machine: 2 vCPUs shared with other jobs; the load average while each run trained is given,",
        "since a load above 2 means the run got less than the 2 cores the budgets assume.",
        "",
    ]
    tg = _load("textgen")
    if tg:
        m, c, env = tg
        lines += [
            "## Next character (KJV, last 5% held out)",
            "",
            f"{_model(c)}; {_recipe(c)}; {_env(env)}.",
            "",
            "| model / baseline | validation bits per character |",
            "|---|---|",
            f"| **{c['model']['cell'].upper()} {c['model']['hidden_size']}** | **{m['valid_bpc']:.3f}** |",
            f"| smoothed 5-gram | {m['5gram_bpc']:.3f} |",
            f"| bigram | {m['bigram_bpc']:.3f} |",
            f"| unigram | {m['unigram_bpc']:.3f} |",
            "",
            f"{m['steps']} updates in {m['train_seconds']:.0f} s, {m['chars_per_s']:,} training characters/s;"
            f" scored on {m['valid_chars']:,} validation characters.",
            f"Target <= 1.65 bpc from 10 minutes on 2 cores: {'met' if m['valid_bpc'] <= 1.65 else 'not met'}.",
            "",
        ]
        const = _load("textgen-constant")
        if const:
            mc, cc, ec = const
            lines += [
                f"The same budget with a constant rate ({_recipe(cc)}; {_env(ec)}): {mc['valid_bpc']:.3f} bpc"
                f" after {mc['steps']} updates at {mc['chars_per_s']:,} chars/s.",
                "",
            ]
    ab = {k: _load(f"textgen-ab-{k}") for k in ("plain", "cosine", "fp32")}
    if all(ab.values()):
        lines += [
            "The same number of updates on a smaller model, one change at a time (schedule; bfloat16):",
            "",
            "| recipe | updates | seconds | training chars/s | validation bpc |",
            "|---|---|---|---|---|",
        ]
        for k in ("plain", "cosine", "fp32"):
            m, c, _ = ab[k]  # type: ignore[misc]
            t = c["train"]
            schedule = "constant after warm-up" if t["lr_final"] == 1.0 else f"warm-up, cosine to {t['lr_final']:g}x"
            label = f"Adam {t['lr']:g}, {schedule}"
            label += " (the preset's recipe)" if k == "cosine" else ""
            row = f"| {_model(c)}: {label} | {m['steps']} | {m['train_seconds']:.0f} | {m['chars_per_s']:,} "
            lines.append(row + f"| {m['valid_bpc']:.3f} |")
        lines.append("")
    li = _load("langid")
    if li:
        m, c, env = li
        cols = ["acc@5", "acc@10", "acc@20", "acc@40", "acc_whole", "acc_whole_40plus"]
        head = ["after 5", "after 10", "after 20", "after 40", "whole string", "whole, 40+ chars"]
        lines += [
            "## Language of a string, after every character (Django catalogs, 20 languages)",
            "",
            f"{_model(c)}; {_env(env)}. {m['test_strings']:,} test strings; split by message id.",
            "'after n' counts the strings at least n characters long.",
            "",
            "| model / baseline | " + " | ".join(head) + " |",
            "|---|" + "---|" * len(cols),
            f"| **{c['model']['cell'].upper()} {c['model']['hidden_size']}** | "
            + " | ".join(f"**{m[k]:.3f}**" for k in cols)
            + " |",
            "| char-trigram naive Bayes | " + " | ".join(f"{m['nb_' + k]:.3f}" for k in cols) + " |",
            "",
            "Target: beat naive Bayes on whole strings, >= 0.83 after 10 characters, >= 0.97 on 40+ characters: "
            + ", ".join(
                f"{name} {'met' if ok else 'not met'}"
                for name, ok in (
                    ("whole strings", m["acc_whole"] > m["nb_acc_whole"]),
                    ("10 characters", m["acc@10"] >= 0.83),
                    ("40+", m["acc_whole_40plus"] >= 0.97),
                )
            )
            + ".",
            f"Whole strings, model minus naive Bayes: {m['acc_whole'] - m['nb_acc_whole']:+.4f}, i.e."
            f" {round((m['acc_whole'] - m['nb_acc_whole']) * m['test_strings']):+d} of {m['test_strings']:,} strings"
            f" (one standard error of either accuracy is about"
            f" {(m['acc_whole'] * (1 - m['acc_whole']) / m['test_strings']) ** 0.5:.3f}).",
            "",
        ]
    we = _load("weather")
    if we:
        m, c, env = we
        lines += [
            "## Next-day weather (Seattle; train 2012–2014, test 2015)",
            "",
            f"{_model(c)}; {_env(env)}. {m['test_days']} test days, state carried from 2012-01-01.",
            "",
            "| model / baseline | MAE temp_max (°C) | MAE temp_min (°C) | Brier (rain) |",
            "|---|---|---|---|",
            f"| **{c['model']['cell'].upper()} {c['model']['hidden_size']}** | **{m['mae_tmax']:.3f}** | "
            f"**{m['mae_tmin']:.3f}** | **{m['brier']:.4f}** |",
        ]
        for b in ("persistence", "climatology"):
            lines.append(f"| {b} | {m[b + '_mae_tmax']:.3f} | {m[b + '_mae_tmin']:.3f} | {m[b + '_brier']:.4f} |")
        figures = ("mae_tmax", "mae_tmin", "brier")
        beat = all(m[k] < m[f"{b}_{k}"] for k in figures for b in ("persistence", "climatology"))
        lines += [
            "",
            "Climatology: the training years' mean (and rain frequency) within ±7 days of the date.",
            f"Target (beat both baselines on every figure): {'met' if beat else 'not met'}.",
            "",
        ]
    keys = [(c, d, r) for d in RECALL_DELAYS for c in RECALL_CELLS for r in RECALL_SEEDS]
    recall = {(c, d, r): _load(f"recall-{c}-{d}-s{r}") for c, d, r in keys}
    if any(recall.values()):
        first = next(v for v in recall.values() if v)
        lines += [
            "## Recall after k distractor steps (synthetic; chance = 0.125)",
            "",
            f"Each cell: hidden {first[1]['model']['hidden_size']}, batch {first[1]['train']['batch_size']},"
            f" Adam {first[1]['train']['lr']:g} (updates per column), seeds {', '.join(map(str, RECALL_SEEDS))};"
            f" accuracy on 2,000 fresh sequences, mean over seeds [each seed]; {_env(first[2])}."
            f" The gated cells start with the gate that keeps the state open (memory_bias"
            f" {first[1]['train'].get('memory_bias')}: LSTM forget gate, GRU update gate); the last rows are the same"
            " cells with their usual initial biases.",
            "",
        ]

        def accuracy(cell: str, delay: int) -> str:
            accs = [float(v[0]["accuracy"]) for r in RECALL_SEEDS if (v := recall[(cell, delay, r)])]
            each = " ".join(f"{a:.2f}" for a in accs)
            return f"{sum(accs) / len(accs):.3f} [{each}]" if accs else "—"

        lines += _cell_by_delay(lambda k: f"k = {k} ({RECALL_STEPS[k]} updates)", accuracy)
        for cell, bias in USUAL_BIAS.items():
            runs = [v for r in RECALL_SEEDS if (v := _load(f"recall-{cell}-40-usual-s{r}"))]
            if runs:
                accs = [float(v[0]["accuracy"]) for v in runs]
                gate = "update" if cell == "gru" else "forget"
                cells = ["—"] * len(RECALL_DELAYS)
                each = " ".join(f"{a:.2f}" for a in accs)
                cells[RECALL_DELAYS.index(40)] = f"{sum(accs) / len(accs):.3f} [{each}]"
                lines.append(f"| {cell.upper()}, {gate} gate bias {bias:g} | " + " | ".join(cells) + " |")
        from edgernn.train.results_attention import recall_rows

        lines += recall_rows(_load, RECALL_DELAYS)  # its reach is depth x window: see the attention section
        lines.append("")
        lines += _reach_table(recall)
    for name, part in spliced_sections().items():
        lines += [f"<!-- section:{name} -->", *part, f"<!-- /section:{name} -->", ""]
    return "\n".join(lines)


def spliced_sections() -> dict[str, list[str]]:
    """Sections that ``--only`` can regenerate alone, spliced into the table between markers."""
    from edgernn.train.results_attention import section as attention_section
    from edgernn.train.results_forecast import section as forecast_section
    from edgernn.train.results_music import section as music_section
    from edgernn.train.results_shipped import section as shipped_section
    from edgernn.train.results_translate import section as translate_section

    return {"forecast": forecast_section(_load, RUNS), "music": music_section(_load, RUNS),
            "attention": attention_section(_load, RUNS), "shipped": shipped_section(),
            "translate": translate_section(_load, RUNS)}  # fmt: skip


def splice(text: str, name: str, part: list[str]) -> str:
    """``text`` with section ``name`` replaced by ``part`` (appended when it is not there yet)."""
    start, end = f"<!-- section:{name} -->", f"<!-- /section:{name} -->"
    block = "\n".join([start, *part, end])
    if start in text and end in text:
        head, rest = text.split(start, 1)
        return head + block + rest.split(end, 1)[1]
    return text.rstrip("\n") + "\n\n" + block + "\n"


def _cell_by_delay(head: Callable[[int], str], value: Callable[[str, int], str]) -> list[str]:
    """A markdown table: a row per recall cell, a column per delay (``head(k)``), ``value(cell, k)``."""
    lines = ["| cell | " + " | ".join(head(k) for k in RECALL_DELAYS) + " |", "|---|" + "---|" * len(RECALL_DELAYS)]
    for cell in RECALL_CELLS:
        lines.append(f"| {cell.upper()} | " + " | ".join(value(cell, k) for k in RECALL_DELAYS) + " |")
    return lines


def _reach_table(recall: dict[tuple[str, int, int], Any]) -> list[str]:
    """Why: log10 of the error signal reaching the symbol's step, at initialisation and after training."""
    if not any(v and "grad_reach_log10" in v[0] for v in recall.values()):
        return []
    lines = [
        "Why: how much of the error signal at the answer reaches the symbol's step, log10 of"
        " |dL/du_0| / |dL/du_last| (median over 256 sequences, mean over seeds), at initialisation → after"
        " training. Backpropagation through time multiplies it by one Jacobian per step. The plain RNN's"
        " shrinks geometrically with the delay from the start (and past float resolution, -30, at k = 80);"
        " with the keeping gate open (memory_bias) the gated cells start near 10^0 at every delay. Where"
        " training succeeds the signal still arrives; where a gated cell fails it has collapsed: the cell"
        " learned to forget before it found the symbol.",
        "",
    ]

    def reach(cell: str, delay: int) -> str:
        runs = [v[0] for r in RECALL_SEEDS if (v := recall[(cell, delay, r)]) and "grad_reach_log10" in v[0]]
        if not runs:
            return "—"
        init = sum(float(m["grad_reach_log10_at_init"]) for m in runs) / len(runs)
        after = sum(float(m["grad_reach_log10"]) for m in runs) / len(runs)
        return f"{init:.1f} → {after:.1f}"

    lines += _cell_by_delay(lambda k: f"k = {k}", reach)
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", help="retrain only these tasks, comma-separated (textgen, ..., forecast)")
    p.add_argument("--render", action="store_true", help="do not train; rewrite the table from runs/results")
    p.add_argument("--threads", type=int, default=2, help="torch threads per run")
    p.add_argument("--jobs", type=int, default=1, help="runs at once, each in its own process (recall: 2 x 1 thread)")
    p.add_argument("--out", default=str(TABLE))
    args = p.parse_args(argv)
    if not args.render:
        runs = run_names(args.only)
        if args.jobs > 1:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(args.jobs) as pool:
                for fut in [pool.submit(train_one, name, o, args.threads) for name, o in runs]:
                    fut.result()
        else:
            for name, overrides in runs:
                train_one(name, overrides, args.threads)
    only = set(args.only.split(",")) if args.only else set()
    sections = spliced_sections() if only else {}
    if only and only <= set(sections) and Path(args.out).exists():  # the other tasks' runs may not be on disk
        text = Path(args.out).read_text()
        for name in sorted(only):
            text = splice(text, name, sections[name])
        if "attention" in only:
            from edgernn.train.results_attention import recall_rows, splice_recall_rows

            text = splice_recall_rows(text, recall_rows(_load, RECALL_DELAYS))
        Path(args.out).write_text(text)
    else:
        Path(args.out).write_text(render())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
