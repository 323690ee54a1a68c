"""The quality run's splits: seeded, disjoint train / dev / two test sets from real CNN/DailyMail rows.

The real rows in `../shared/data/cnn_dailymail/` are 100 train, 1,758 validation (about 1,000 CNN and
750 DailyMail stories) and 500 test rows (HF test[0:500], CNN stories only). The full test split is
about 90% DailyMail (10,397 of 11,490 stories), so CNN-only test rows alone would flatter a system
that writes short, CNN-style highlights. `carve` makes:

- `test_cnn`: the test rows as they are (the first `cnn_test_rows`, HF order);
- `test_mixed`: validation rows with DailyMail and CNN in the real test split's proportion
  (`DAILYMAIL_SHARE`), held out from everything else;
- `dev`: validation rows, half CNN and half DailyMail, for every choice made before testing;
- `train`: the remaining validation rows plus the train rows, shuffled.

Which outlet a story comes from is read from its text (`outlet`): CNN stories carry the "(CNN)" dateline
near the start. On the validation rows this finds 978 of the 1,000 rows SOURCE.md lists as CNN and 9 of
the other 758 (SOURCE.md: 9 of them are CNN), so the mixed set's share is right to within a few rows.

Example (hand-written rows):
    >>> rows = [{"id": str(i), "article": ("(CNN) a%d" % i if i % 2 else "By . Reporter . b%d" % i), "highlights": "h"}
    ...         for i in range(30)]
    >>> splits = carve(rows, [], [], mixed_test_rows=10, dev_rows=4, cnn_test_rows=0, seed=0)
    >>> [len(splits[name]) for name in SPLITS], sum(outlet(r["article"]) == "dailymail" for r in splits["test_mixed"])
    ([16, 4, 0, 10], 9)
"""

from __future__ import annotations

import random

SPLITS = ("train", "dev", "test_cnn", "test_mixed")
DAILYMAIL_SHARE = 10397 / 11490  # DailyMail stories in the full CNN/DailyMail 3.0.0 test split (abisee URL lists)


def outlet(article: str) -> str:
    """'cnn' when the story carries CNN's dateline near its start, else 'dailymail'.

    Example:
        >>> outlet("LONDON, England (CNN) -- ..."), outlet("By . Daily Mail Reporter . PUBLISHED: ...")
        ('cnn', 'dailymail')
    """
    return "cnn" if "(CNN)" in article[:300] or "CNN" in article[:120] else "dailymail"


def take(pool: list[dict], count: int, what: str) -> list[dict]:
    """Remove and return the first `count` rows of `pool`, or fail naming what ran short."""
    if count > len(pool):
        raise ValueError(f"{what}: {count} rows needed, {len(pool)} available")
    taken = pool[:count]
    del pool[:count]
    return taken


def carve(validation: list[dict], train: list[dict], test: list[dict], mixed_test_rows: int, dev_rows: int,
          cnn_test_rows: int, seed: int) -> dict[str, list[dict]]:
    """The four splits (see the module docstring); every row in at most one, none repeated."""
    rng = random.Random(seed)
    pools = {name: [row for row in validation if outlet(row["article"]) == name] for name in ("cnn", "dailymail")}
    for pool in pools.values():
        rng.shuffle(pool)
    dailymail = round(mixed_test_rows * DAILYMAIL_SHARE)
    mixed = take(pools["dailymail"], dailymail, "mixed test, DailyMail rows") + \
        take(pools["cnn"], mixed_test_rows - dailymail, "mixed test, CNN rows")
    dev = take(pools["dailymail"], dev_rows // 2, "dev, DailyMail rows") + \
        take(pools["cnn"], dev_rows - dev_rows // 2, "dev, CNN rows")
    rest = pools["cnn"] + pools["dailymail"] + list(train)
    for part in (mixed, dev, rest):
        rng.shuffle(part)
    splits = {"train": rest, "dev": dev, "test_cnn": list(test[:cnn_test_rows]), "test_mixed": mixed}
    check_disjoint(splits)
    return splits


def check_disjoint(splits: dict[str, list[dict]]) -> None:
    """Fail if an id or an article appears twice across (or within) the splits."""
    for key in ("id", "article"):
        seen: dict[str, str] = {}
        for name, rows in splits.items():
            for row in rows:
                if row[key] in seen:
                    raise ValueError(f"{key} {row[key][:40]!r} is in both {seen[row[key]]} and {name}")
                seen[row[key]] = name
