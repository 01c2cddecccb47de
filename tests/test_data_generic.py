"""Bring-your-own-data folders (items.csv + interactions.csv)."""

import pytest

from xdtutor.data import dataset_stats, load_generic
from xdtutor.data.errors import (DataEncodingError, DataError, EmptyDomainError, MalformedLineError,
                                 MissingTextError, UnknownItemError)


def test_generic_dataset(fixture_data):
    ds = load_generic(fixture_data / "generic_books_movies")
    assert ds.target.domain.name == "books" and [s.name for s in ds.sources] == ["movies"]
    books = ds.target.domain
    assert books.items["raw_id"].tolist() == ["b1", "b2", "b3"]
    # u2's books are sorted by timestamp (b3@1, b1@2, b2@3), not file order.
    assert books.sequences["u2"].tolist() == [2, 0, 1]
    assert ds.target.test.users == ["u1", "u2"]
    assert ds.overlap == {"u1", "u2"}
    assert ds.sources[0].items.loc[1, "text"] == "Heat (1995). Crime, thriller"  # quoted comma
    # u1: b1@10 m1@15 b2@20 m2@30 b3@30 -> test b3, valid b2. m2 has the test item's timestamp:
    # counted as after it (no leakage at the prediction time).
    assert ds.source_history("u1", "test").tolist() == [0]
    assert ds.source_history("u1", "valid").tolist() == [0]
    # u2: m2@5 after all its books -> never visible.
    assert ds.source_history("u2", "test").tolist() == []
    assert dataset_stats(ds)["domains"]["movies"]["interactions"] == 6


def test_generic_target_and_source_choice(fixture_data):
    ds = load_generic(fixture_data / "generic_books_movies", target="movies", source="books")
    assert ds.target.domain.name == "movies" and ds.sources[0].name == "books"
    assert ds.target.test.users == ["u3"] and ds.overlap == {"u1", "u2"}
    assert ds.target.train["u1"].tolist() == [0, 1]  # fewer than 3 movies: train only
    with pytest.raises(DataError, match="no domain 'games'"):
        load_generic(fixture_data / "generic_books_movies", target="games")
    with pytest.raises(DataError, match="source 'books' must be a domain other than the target"):
        load_generic(fixture_data / "generic_books_movies", target="books", source="books")


def _folder(tmp_path, items, inter):
    (tmp_path / "items.csv").write_bytes(items if isinstance(items, bytes) else items.encode())
    (tmp_path / "interactions.csv").write_bytes(inter if isinstance(inter, bytes) else inter.encode())
    return tmp_path


ITEMS = "item_id,domain,text\na,x,A text\nb,x,B text\nc,y,C text\n"
INTER = "user_id,item_id,domain,order\nu,a,x,1\nu,b,x,2\nu,a,x,3\nu,c,y,0\n"


@pytest.mark.parametrize("items, inter, exc, file, line, field", [
    (ITEMS, INTER.replace("u,b,x,2", "u,zz,x,2"), UnknownItemError, "interactions.csv", 3, "item_id"),
    (ITEMS, INTER.replace("u,b,x,2", "u,b,w,2"), UnknownItemError, "interactions.csv", 3, "domain"),
    (ITEMS, INTER.replace("u,b,x,2", "u,b,x,soon"), MalformedLineError, "interactions.csv", 3, "order"),
    (ITEMS, INTER.replace("u,b,x,2", "u,b,x"), MalformedLineError, "interactions.csv", 3, "line"),
    (ITEMS, INTER.replace(",order", ",when"), MalformedLineError, "interactions.csv", 1, "timestamp"),
    (ITEMS.replace("B text", " "), INTER, MissingTextError, "items.csv", 3, "text"),
    (ITEMS.replace("b,x,B text", "a,x,B text"), INTER, MalformedLineError, "items.csv", 3, "item_id"),
    (ITEMS.replace("text\n", "title\n", 1), INTER, MalformedLineError, "items.csv", 1, "text"),
    (ITEMS, INTER.replace("u,c,y,0\n", ""), EmptyDomainError, "interactions.csv", None, "domain"),
    (ITEMS.encode().replace(b"C text", b"C \xe9t\xe9"), INTER, DataEncodingError, "items.csv", 4, None),
    # an unclosed quote would swallow the rows after it (50 items silently became 11): named instead
    (ITEMS.replace("B text", '"B text'), INTER, MalformedLineError, "items.csv", 3, "line"),
    (ITEMS.replace("B text", "B\x00text"), INTER, DataEncodingError, "items.csv", 3, None),
])
def test_generic_bad_input(tmp_path, items, inter, exc, file, line, field):
    folder = _folder(tmp_path, items, inter)
    with pytest.raises(exc) as info:
        load_generic(folder)
    assert (info.value.file.name, info.value.line, info.value.field) == (file, line, field)


def test_load_dataset_accepts_a_generic_folder(fixture_data):
    from xdtutor.data import load_dataset

    ds = load_dataset(str(fixture_data / "generic_books_movies"), target="movies", subsample=1.0)
    assert ds.target.domain.name == "movies" and ds.name == "generic:generic_books_movies"


def test_a_byte_order_mark_and_a_long_text_are_read(tmp_path):
    """What spreadsheet programs write (a UTF-8 BOM) and item texts over the csv module's 128 KB limit."""
    long_text = "word " * 40_000                                  # 200 KB in one field
    items = ("\ufeff" + ITEMS.replace("B text", long_text)).encode("utf-8")
    inter = ("\ufeff" + INTER).encode("utf-8")
    ds = load_generic(_folder(tmp_path, items, inter))
    assert ds.target.domain.items["text"].tolist()[1] == long_text.strip()
    import csv
    assert csv.field_size_limit() == 131072                      # the global limit is left as it was


def test_written_files_follow_the_umask(tmp_path):
    import os

    from xdtutor.utils import atomic_write

    old = os.umask(0o027)
    try:
        with atomic_write(tmp_path / "x.json", "w") as fh:
            fh.write("{}")
    finally:
        os.umask(old)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o640  # not mkstemp's private 0600
