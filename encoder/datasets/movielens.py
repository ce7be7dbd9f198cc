"""Q2I pairs from MovieLens 100K with TMDB text and posters (read by path, never copied).

Each movie is a slice: its poster is the frame; its title goes to ``title``,
its genres to ``tags`` and its TMDB overview to ``asr`` (the slice field for
what the content says). Two kinds of pairs:

``genre_decade_pairs`` (the training test's choice): the query is a genre and
decade request such as ``Comedy Romance movies from the 1990s``; the item is a
movie that fits it. Every movie with that query text is a positive, so batches
mask them out of each other's negatives, and held-out recall counts a query as
found when any fitting movie ranks in the top k. The pretrained text model does
not solve it from the words alone (the genres are a few tags among the title
and overview, the decade is only a year in the title), so the gain over the
untrained encoder shows that training learnt the request-to-content mapping,
and it does so on unseen movies (the split is by movie).

``co_like_pairs``: a movie a user liked (title, genres, overview) as the query,
the next movie the same user liked as the item, grouped by user (at most
``per_user`` pairs per user). This is the recommender's own signal, but at a
few hundred pairs it is mostly popularity: ranking the held-out gallery by
global popularity alone reaches recall@10 of about 0.2, and a short training
run stays near that, so it is not the training test's check.
"""

from __future__ import annotations

import csv
import itertools
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from encoder.errors import EncoderError
from encoder.slices import SliceLine
from encoder.training.pairs import PairLine

GENRES = [
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "FilmNoir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "SciFi",
    "Thriller",
    "War",
    "Western",
]


def movie_slices(data_dir: str | os.PathLike[str]) -> dict[str, SliceLine]:
    """One slice per movie id (the first row of items.csv), keyed by movie id."""
    data = Path(data_dir)
    items = data / "items.csv"
    if not items.is_file():
        raise EncoderError(f"{data} has no items.csv; give the movielens100k_tmdb folder")
    slices: dict[str, SliceLine] = {}
    with items.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            movie = row["movie_id"]
            if movie in slices:
                continue
            poster = (data / "posters" / f"{movie}.jpg").resolve()
            slices[movie] = SliceLine(
                slice_id=f"movie-{movie}",
                title=row["title"],
                tags=[g for g in GENRES if row.get(g) == "1"],
                asr=row["overview"].strip(),
                frames=[str(poster)] if poster.is_file() else [],
                domain="movie",
            )
    return slices


def query_text(movie: SliceLine) -> str:
    """What a user who liked ``movie`` is looking for: its title, genres and overview."""
    return f"{movie.title}. {', '.join(movie.tags)}. {movie.asr}"


def decade(title: str) -> str | None:
    """``1990s`` from ``Toy Story (1995)``; None when the title carries no year."""
    year = title.rstrip()[-5:-1]
    return f"{year[:3]}0s" if title.rstrip().endswith(")") and year.isdigit() else None


def genre_decade_pairs(
    data_dir: str | os.PathLike[str], *, movies: int | None = None, seed: int = 0
) -> list[PairLine]:
    """One pair per movie (with genres and a year): its genre-and-decade query -> the movie."""
    slices = [s for s in movie_slices(data_dir).values() if s.tags and decade(s.title)]
    if movies is not None:
        order = np.random.default_rng(seed).permutation(len(slices))[:movies]
        slices = [slices[i] for i in sorted(order.tolist())]
    return [
        PairLine(query=f"{' '.join(s.tags)} movies from the {decade(s.title)}", slice=s)
        for s in slices
    ]


def co_like_pairs(
    data_dir: str | os.PathLike[str],
    *,
    users: int | None = None,
    per_user: int = 2,
    min_rating: int = 4,
    seed: int = 0,
) -> list[PairLine]:
    """Query -> next liked movie pairs, grouped by user (see the module docstring)."""
    slices = movie_slices(data_dir)
    likes: dict[str, list[tuple[int, str]]] = defaultdict(list)
    with (Path(data_dir) / "ratings.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if int(row["rating"]) >= min_rating and row["movie_id"] in slices:
                likes[row["user_id"]].append((int(row["unix_timestamp"]), row["movie_id"]))
    rng = np.random.default_rng(seed)
    chosen_users = sorted(likes, key=int)
    if users is not None:
        chosen_users = sorted(rng.permutation(chosen_users)[:users].tolist(), key=int)
    pairs: list[PairLine] = []
    for user in chosen_users:
        seq = [movie for _, movie in sorted(likes[user])]
        steps = [(a, b) for a, b in itertools.pairwise(seq) if a != b]
        for k in sorted(rng.permutation(len(steps))[:per_user].tolist()):
            query, item = steps[k]
            pairs.append(
                PairLine(query=query_text(slices[query]), slice=slices[item], group=f"user-{user}")
            )
    return pairs
