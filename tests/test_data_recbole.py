"""RecBole atomic files: our domains out and back, RecBole folders in, bad files named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xdtutor.cli import main
from xdtutor.data import Domain
from xdtutor.data.errors import DataError, MalformedLineError, MissingTextError, UnknownItemError
from xdtutor.data.generic import load_generic
from xdtutor.data.recbole import read_atomic, write_atomic


def _domain(name: str = "books") -> Domain:
    items = pd.DataFrame({"item": range(4), "raw_id": ["b1", "b2", "b3", "b4"],
                          "text": ["The Hobbit. Fantasy", "Dune\tSci-Fi", "Emma", "Ulysses"]})
    return Domain(name, items, {"u1": np.array([2, 0, 1]), "u2": np.array([3, 3]), "u3": np.array([1, 2])})


def test_a_domain_goes_out_and_comes_back():
    import tempfile

    d = _domain()
    with tempfile.TemporaryDirectory() as tmp:
        inter, item = write_atomic(d, tmp)
        assert inter.read_text().splitlines()[:2] == ["user_id:token\titem_id:token\ttimestamp:float", "u1\tb3\t0"]
        back = read_atomic(tmp, "books")
    assert back.items["raw_id"].tolist() == d.items["raw_id"].tolist()
    assert back.items["text"].tolist() == ["The Hobbit. Fantasy", "Dune Sci-Fi", "Emma", "Ulysses"]  # tab -> space
    assert {u: s.tolist() for u, s in back.sequences.items()} == {u: s.tolist() for u, s in d.sequences.items()}


def test_recbole_files_are_sorted_by_timestamp_and_texts_joined(tmp_path):
    (tmp_path / "m.item").write_text("item_id:token\ttitle:token_seq\tgenre:token_seq\tyear:float\n"
                                     "a\tAlien\tSci-Fi\t1979\nb\tHeat\t\t1995\n")
    (tmp_path / "m.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                                      "1\tb\t5\t200\n1\ta\t4\t100\n2\ta\t3\t50\n")
    d = read_atomic(tmp_path, "m")
    assert d.texts == ["Alien. Sci-Fi", "Heat"]
    assert d.sequences["1"].tolist() == [0, 1]  # a (t=100) before b (t=200), whatever the file order


def test_bad_atomic_files_name_file_line_and_field(tmp_path):
    (tmp_path / "m.item").write_text("item_id:token\ttitle:token_seq\na\tAlien\n")
    cases = [  # (file rewritten, its text, error, message); each case keeps the files before it
        ("m.inter", "user_id:token\titem_id:token\n1\tz\n",
         UnknownItemError, r"m.inter:2: field 'item_id': item 'z' is not in m.item"),
        ("m.inter", "user_id:token\titem_id\n1\ta\n",
         MalformedLineError, r"m.inter:1: field 'item_id': a RecBole header field is name:type"),
        ("m.inter", "user_id:token\titem_id:token\n1\ta\textra\n",
         MalformedLineError, r"m.inter:2: 3 fields, the header has 2"),
        ("m.item", "item_id:token\ttitle:token_seq\na\t \n",
         MissingTextError, r"m.item:2: field 'title': item 'a' has no text"),
    ]
    for name, text, error, message in cases:
        (tmp_path / name).write_text(text)
        with pytest.raises(error, match=message):
            read_atomic(tmp_path, "m")
    with pytest.raises(DataError, match="no such file"):
        read_atomic(tmp_path, "missing")


def test_a_folder_of_atomic_files_is_a_cross_domain_dataset(tmp_path):
    """One .inter/.item pair per domain; timestamps order a user's items across domains."""
    rng = np.random.default_rng(0)
    books = ["item_id:token\ttitle:token_seq"] + [f"b{i}\tbook {i}" for i in range(10)]
    films = ["item_id:token\ttitle:token_seq"] + [f"f{i}\tfilm {i}" for i in range(8)]
    (tmp_path / "books.item").write_text("\n".join(books) + "\n")
    (tmp_path / "films.item").write_text("\n".join(films) + "\n")
    b_rows, f_rows = ["user_id:token\titem_id:token\ttimestamp:float"], ["user_id:token\titem_id:token\ttimestamp:float"]
    for u in range(12):
        for t in range(5):
            b_rows.append(f"u{u}\tb{rng.integers(10)}\t{10 * t}")
            f_rows.append(f"u{u}\tf{rng.integers(8)}\t{10 * t + 5}")  # each film between two books
    (tmp_path / "books.inter").write_text("\n".join(b_rows) + "\n")
    (tmp_path / "films.inter").write_text("\n".join(f_rows) + "\n")
    ds = load_generic(tmp_path, target="books")
    assert ds.target.domain.n_items == 10 and ds.sources[0].name == "films" and len(ds.overlap) == 12
    items, before = ds.source_positions["u0"]
    assert before.tolist() == [1, 2, 3, 4, 5]  # film t=10k+5 comes after k+1 books
    assert main(["data", "stats", "--path", str(tmp_path), "--target", "books"]) == 0
    out = tmp_path / "exported"
    assert main(["data", "export-recbole", "--path", str(tmp_path), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["books.inter", "books.item", "films.inter", "films.item"]
