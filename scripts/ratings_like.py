"""A MovieLens-like ratings file (``u.data``: ``user item rating timestamp``, tab separated)
for tuning ``flows evaluate --format movielens --exclude-seen`` without the real dataset:
943 users, 1,682 items in 19 genres, item popularity a power law (exponent 0.9), each user
drawn to 3 genres (3.0 against 0.3), 20–700 ratings per user (log-normal, median ≈ 67) rated
roughly most popular first, in bursts seconds apart with a gap of hours to weeks now and
then; ratings 1–5 (6/11/27/34/22 %). Seeded: the same file every time.

It has popularity and taste, and none of a real catalog's item-to-item structure (sequels,
series): co-visitation scores lower on it than on MovieLens.

    python -m scripts.ratings_like out/ratings-like.data
"""

from __future__ import annotations

import argparse
import math
import random
from pathlib import Path


def rows(seed: int = 11, users: int = 943, items: int = 1682, genres: int = 19
         ) -> list[tuple[int, int, int, int]]:
    rng = random.Random(seed)
    genre = [rng.randrange(genres) for _ in range(items)]
    pop = [1 / (r + 1) ** 0.9 for r in range(items)]
    rng.shuffle(pop)
    out = []
    t0 = 874_724_710
    for u in range(1, users + 1):
        fav = set(rng.sample(range(genres), 3))
        w = [p * (3.0 if genre[i] in fav else 0.3) for i, p in enumerate(pop)]
        n = min(700, max(20, int(rng.lognormvariate(4.2, 0.9))))
        chosen: set[int] = set()
        while len(chosen) < n:
            chosen.update(rng.choices(range(items), weights=w, k=n - len(chosen)))
        order = sorted(chosen)
        order.sort(key=lambda i: -math.log(pop[i]) + rng.gauss(0, 2))
        t = t0 + rng.randrange(0, 200 * 86_400)
        for i in order:
            t += rng.choice([rng.randrange(5, 60)] * 9 + [rng.randrange(3600, 30 * 86_400)])
            out.append((u, i + 1, rng.choices([1, 2, 3, 4, 5], weights=[6, 11, 27, 34, 22])[0],
                        t))
    out.sort(key=lambda r: r[3])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("out", nargs="?", default="out/ratings-like.data")
    path = Path(ap.parse_args(argv).out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("\t".join(map(str, r)) + "\n" for r in rows()))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
