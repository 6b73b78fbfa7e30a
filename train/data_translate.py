"""Parallel text from the gettext catalogs of installed packages: English ``msgid`` → ``msgstr``.

Two kinds of catalogs, both read with the stdlib's ``gettext`` from compiled ``.mo`` files:

- ``django``: every ``django.mo`` / ``djangojs.mo`` inside the installed Django (Python
  package, ~1,000 messages per language);
- ``system``: the catalogs the operating system's packages install under ``/usr/share/locale``
  (git, PostgreSQL, GTK, coreutils, ...: tens of thousands of messages for the large
  languages). Which packages are there depends on the machine, so the catalog files read and
  their digest are recorded with the model.

Messages longer than ``MAX_SOURCE`` characters or spanning lines are left out, as are empty or
untranslated ones (msgstr == msgid) and those whose translation uses a placeholder the source
has not (a broken catalog entry). Placeholders are mapped to marker characters by
``runtime.apps.translate.to_markers`` (the app does the same at run time), so the model copies
them and never learns their spelling.

The split is by unique source string: two msgids equal after lower-casing, collapsing
whitespace and dropping placeholders (``split_key``) are on the same side, so a test sentence
is never a training sentence with other placeholders or capitals.
"""

from __future__ import annotations

import gettext
import hashlib
import re
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from edgernn.runtime.apps.translate import from_markers, to_markers

CATALOG_KINDS = ("django", "system")
SYSTEM_LOCALE = Path("/usr/share/locale")
MAX_SOURCE = 100  # characters of a normalised source string (the exported memory limit is set from it)
MAX_TARGET = 140
TEST_SHARE = 25  # one unique source string in 25 goes to the held-out test set
_SPACE = re.compile(r"\s+")


def _django_root() -> Path:
    try:
        import django
    except ImportError:
        from edgernn.train.trainer import MissingDataError

        raise MissingDataError("the translate task reads Django's catalogs: pip install Django") from None
    return Path(django.__file__).parent


def catalog_files(lang: str, kinds: tuple[str, ...]) -> list[Path]:
    """The ``.mo`` files of language ``lang`` in the catalogs ``kinds``, sorted."""
    unknown = sorted(set(kinds) - set(CATALOG_KINDS))
    if unknown:
        from edgernn.train.trainer import TrainingError

        raise TrainingError(f"unknown catalog kind(s) {unknown}; valid: {', '.join(CATALOG_KINDS)}")
    files: list[Path] = []
    if "django" in kinds:
        root = _django_root()
        files += sorted(root.glob(f"**/locale/{lang}/LC_MESSAGES/django*.mo"))
    if "system" in kinds:
        files += sorted((SYSTEM_LOCALE / lang / "LC_MESSAGES").glob("*.mo"))
    return files


def split_key(source: str) -> str:
    """What makes two source strings "the same" for the split: no placeholders, case or spacing."""
    marked = to_markers(source)[0] or source  # (None: a source load_pairs never keeps; its key is its own text)
    bare = "".join(ch for ch in marked if not 0xE000 <= ord(ch) < 0xE100)
    return _SPACE.sub(" ", bare.lower()).strip()


def is_test(source: str) -> bool:
    return int(hashlib.sha1(split_key(source).encode()).hexdigest()[:8], 16) % TEST_SHARE == 0


def read_catalog(path: Path) -> list[tuple[str, str]]:
    """(msgid, msgstr) of one ``.mo`` file, singular forms only; an unreadable file gives none."""
    try:
        with open(path, "rb") as fh:
            catalog = gettext.GNUTranslations(fh)._catalog  # type: ignore[attr-defined]
    except (OSError, ValueError, struct.error, IndexError):  # a damaged catalog of some package: skipped
        return []
    out = []
    for key, msgstr in catalog.items():
        if isinstance(key, tuple):
            if key[1] != 0:
                continue
            key = key[0]
        if key and isinstance(msgstr, str):
            out.append((key.split("\x04")[-1], msgstr))  # drop a msgctxt
    return out


def normalise_pair(msgid: str, msgstr: str) -> tuple[str, str] | None:
    """The pair with placeholders as markers, or None when it is left out (see the module doc)."""
    if not msgstr or msgid == msgstr or "\n" in msgid or "\n" in msgstr:
        return None
    source, places = to_markers(msgid)
    if source is None or not any(ch.isalpha() for ch in source):
        return None
    target, other = to_markers(msgstr, places)
    if target is None or other != places:  # the translation has a placeholder the source has not
        return None
    source, target = _SPACE.sub(" ", source).strip(), _SPACE.sub(" ", target).strip()
    if not source or not target or len(source) > MAX_SOURCE or len(target) > MAX_TARGET:
        return None
    return source, target


@dataclass(frozen=True)
class Example:
    source: str  # normalised: placeholders as markers
    target: str
    raw_source: str  # as in the catalog


@dataclass
class ParallelData:
    lang: str
    kinds: tuple[str, ...]
    train: list[Example]
    test: list[Example]  # one per unique split key
    files: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # pairs kept per catalog kind

    def digest(self) -> str:
        text = "\n".join(f"{e.source}\t{e.target}" for e in self.train + self.test)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_pairs(lang: str, kinds: tuple[str, ...] = ("django",)) -> ParallelData:
    """Every kept (English, ``lang``) pair of the catalogs ``kinds``, split by ``split_key``."""
    files = catalog_files(lang, kinds)
    if not files:
        from edgernn.train.trainer import MissingDataError

        raise MissingDataError(f"no catalogs of language {lang!r} in {', '.join(kinds)} (see data_translate.py)")
    seen: dict[tuple[str, str], Example] = {}
    counts: Counter[str] = Counter()
    for path in files:
        kind = "system" if path.is_relative_to(SYSTEM_LOCALE) else "django"
        for msgid, msgstr in read_catalog(path):
            pair = normalise_pair(msgid, msgstr)
            if pair is not None and pair not in seen:
                seen[pair] = Example(pair[0], pair[1], msgid)
                counts[kind] += 1
    train: list[Example] = []
    test_by_key: dict[str, Example] = {}
    for pair in sorted(seen):
        ex = seen[pair]
        if is_test(ex.raw_source):
            test_by_key.setdefault(split_key(ex.raw_source), ex)  # the first translation in sorted order
        else:
            train.append(ex)
    test = [test_by_key[k] for k in sorted(test_by_key)]
    return ParallelData(lang, tuple(kinds), train, test, [str(f) for f in files], dict(counts))


def pair_counts(kinds: tuple[str, ...] = ("django",), langs: tuple[str, ...] | None = None) -> dict[str, int]:
    """Kept pairs per target language (all languages of the catalogs unless ``langs``), most first."""
    if langs is None:
        found: set[str] = set()
        if "django" in kinds:
            found |= {p.parts[-3] for p in _django_root().glob("**/locale/*/LC_MESSAGES/django.mo")}
        if "system" in kinds and SYSTEM_LOCALE.is_dir():
            found |= {p.parts[-3] for p in SYSTEM_LOCALE.glob("*/LC_MESSAGES/*.mo")}
        langs = tuple(sorted(found - {"en", "en_GB", "en_AU", "en_CA"}))
    out = {}
    for lang in langs:
        try:
            data = load_pairs(lang, kinds)
        except ImportError:
            continue
        out[lang] = len(data.train) + len(data.test)
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def restore(text: str, raw_source: str) -> str:
    """A normalised output with the source's placeholders put back (for showing, not scoring)."""
    _, places = to_markers(raw_source)
    return from_markers(text, places)
