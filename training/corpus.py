"""The training corpus: the King James Bible from Debian's `bible-kjv` package (public domain).

`bible -l0 gen1:1-rev22:21` prints every chapter as a "Book N" heading followed by numbered
verses. We keep the verse text, one verse per line, and a blank line between chapters; every
20th chapter (5%) is held out for evaluation, so both halves cover every book and style.
"""
import os
import re
import subprocess

HELD_OUT_EVERY = 20   # chapter index % 20 == 10 → held out (5%)
HELD_OUT_PHASE = 10
_BIBLE = "/usr/bin/bible"


def read_chapters(bible=_BIBLE):
    """Returns [(heading, [verse, ...]), ...] in canonical order."""
    if not os.path.exists(bible):
        raise SystemExit(f"{bible} not found: install the Debian packages bible-kjv and bible-kjv-text "
                         "(training/train.sh does)")
    out = subprocess.run([bible, "-l0", "gen1:1-rev22:21"], check=True, capture_output=True).stdout
    text = out.decode("ascii")  # the KJV text is pure ASCII; anything else means a different package
    chapters = []
    verse = re.compile(r"^\s+\d+ (.*\S)\s*$")
    for line in text.splitlines():
        if not line.strip():
            continue
        m = verse.match(line)
        if m:
            if not chapters:
                raise SystemExit("unexpected `bible` output: a verse before the first chapter heading")
            chapters[-1][1].append(m.group(1))
        else:
            chapters.append((line.strip(), []))
    if len(chapters) != 1189:
        raise SystemExit(f"expected the 1189 chapters of the KJV, `bible` printed {len(chapters)}")
    return chapters


def chapter_text(verses):
    return "\n".join(verses) + "\n\n"


def split(chapters):
    """(train_text, held_out_text)."""
    train, held = [], []
    for i, (_, verses) in enumerate(chapters):
        (held if i % HELD_OUT_EVERY == HELD_OUT_PHASE else train).append(chapter_text(verses))
    return "".join(train), "".join(held)
