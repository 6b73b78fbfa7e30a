"""Streaming text generation with a character model: the prompt is pushed, then one char per step.

Example:
    >>> from edgernn.runtime.apps import load_app
    >>> from edgernn.runtime.apps.textgen import generate
    >>> stream = load_app("textgen").stream()
    >>> text = "".join(generate(stream, "And God said", 40, temperature=0.7, seed=0))
    >>> len(text)
    40
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from edgernn.runtime import args
from edgernn.runtime.engine import Engine, Stream
from edgernn.runtime.errors import ArgumentError, InputError, SpecError


def vocabulary(source: Engine | Stream) -> str:
    """The model's characters (id = index), from ``spec.task['vocabulary']``."""
    engine = source.engine if isinstance(source, Stream) else source
    vocab = engine.spec.task.get("vocabulary")
    if not isinstance(vocab, str) or not vocab:
        raise SpecError(f"{engine.source}: spec.task has no 'vocabulary'; not a character model")
    return vocab


def encode(vocab: str, text: str, what: str = "text") -> np.ndarray:
    """Token ids of ``text``; InputError naming the characters the vocabulary lacks."""
    index = {c: i for i, c in enumerate(vocab)}
    unknown = sorted({c for c in text if c not in index})
    if unknown:
        raise InputError(f"{what}: characters {unknown} are not in the model's vocabulary")
    return np.array([index[c] for c in text], dtype=np.int64)


def sample(logits: np.ndarray, rng: np.random.Generator, temperature: float = 0.8, top_k: int = 0) -> int:
    """Draw one id from ``logits``: greedy when temperature is 0, else softmax(logits / T) over the top k."""
    if temperature <= 0.0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / temperature
    if 0 < top_k < len(z):
        cut = np.partition(z, -top_k)[-top_k]
        z = np.where(z >= cut, z, -np.inf)
    p = np.exp(z - z.max())
    p /= p.sum()
    return int(rng.choice(len(p), p=p))


def generate(
    stream: Stream,
    prompt: str,
    n_chars: int,
    temperature: float = 0.8,
    top_k: int = 0,
    seed: int = 0,
) -> Iterator[str]:
    """Yield ``n_chars`` characters continuing ``prompt``; the stream's state carries everything."""
    if not isinstance(stream, Stream):
        raise ArgumentError(f"generate: stream must be an edgernn Stream, got {type(stream).__name__}")
    if not isinstance(prompt, str):
        raise ArgumentError(f"generate: prompt must be a str, got {type(prompt).__name__}")
    n_chars = args.count("generate", "n_chars", n_chars)
    vocab = vocabulary(stream)
    if not prompt:
        raise InputError("prompt: give at least one character")
    real = isinstance(temperature, (int, float)) and not isinstance(temperature, bool)
    if not (real and math.isfinite(temperature) and temperature >= 0):
        raise InputError(f"temperature: expected a finite number >= 0, got {temperature!r}")
    seed, top_k = args.count("generate", "seed", seed), args.count("generate", "top_k", top_k)
    ids = encode(vocab, prompt, "prompt")
    rng = np.random.default_rng(seed)
    logits = stream.push(ids)[-1]
    for _ in range(n_chars):
        nxt = sample(logits, rng, temperature, top_k)
        yield vocab[nxt]
        logits = stream.step(nxt)
