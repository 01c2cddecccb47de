import numpy as np
import pandas as pd
import pytest

from xdtutor.data import Domain, dataset_stats, k_core, leave_one_out
from xdtutor.data.errors import EmptyDomainError
from xdtutor.data.preprocess import build_item_text, check_reference, flatten_stats, remap_ids, remap_items
from xdtutor.protocol import Protocol

P = Protocol(dataset="toy", split="loo")


def _domain(seqs, n_items):
    items = pd.DataFrame({"item": np.arange(n_items), "raw_id": [f"i{i}" for i in range(n_items)],
                          "text": [f"item {i}" for i in range(n_items)]})
    return Domain("toy", items, {u: np.asarray(s, dtype=np.int64) for u, s in seqs.items()})


def test_leave_one_out_is_chronological():
    d = _domain({"a": [0, 1, 2, 3], "b": [4, 2], "c": [1, 2, 0]}, 5)
    s = leave_one_out(d, P)
    assert s.train["a"].tolist() == [0, 1] and s.train["b"].tolist() == [4, 2] and s.train["c"].tolist() == [1]
    assert s.valid.users == ["a", "c"] and s.valid.targets.tolist() == [2, 2]
    assert [h.tolist() for h in s.valid.histories] == [[0, 1], [1]]
    assert s.test.targets.tolist() == [3, 0]
    assert [h.tolist() for h in s.test.histories] == [[0, 1, 2], [1, 2]]
    assert s.protocol is P


def test_leave_one_out_rejects_bad_min_len_and_empty():
    with pytest.raises(ValueError):
        leave_one_out(_domain({"a": [0, 1, 2]}, 3), P, min_len=2)
    with pytest.raises(EmptyDomainError):
        leave_one_out(_domain({"a": [0, 1]}, 3), P)


def test_k_core_iterates_until_stable():
    # item 3 appears once -> dropped; then user "c" has 1 item -> dropped; then item 2 has 1 -> dropped ...
    d = _domain({"a": [0, 1, 2], "b": [0, 1], "c": [3, 2]}, 4)
    out = k_core(d, 2)
    assert {u: s.tolist() for u, s in out.sequences.items()} == {"a": [0, 1], "b": [0, 1]}
    assert out.items["raw_id"].tolist() == ["i0", "i1"] and out.items["item"].tolist() == [0, 1]
    with pytest.raises(EmptyDomainError):
        k_core(d, 5)


def test_remap_items_and_ids():
    d, old_to_new = remap_items(_domain({"a": [3, 1]}, 4))
    assert old_to_new.tolist() == [-1, 0, -1, 1]
    assert d.sequences["a"].tolist() == [1, 0] and d.items["raw_id"].tolist() == ["i1", "i3"]
    codes, uniques = remap_ids(["x", "y", "x", "z"])
    assert codes.tolist() == [0, 1, 0, 2] and uniques == ["x", "y", "z"]


def test_build_item_text():
    items = pd.DataFrame({"title": ["Ruler", "Pipette", None], "brand": ["Acme", "", "Bolt"],
                          "cats": [["Tools", "Measuring"], [], np.nan]})
    text = build_item_text(items, ["title", "cats", "brand"], prefixes={"brand": "Brand: "})
    assert text.tolist() == ["Ruler. Tools Measuring. Brand: Acme", "Pipette", "Brand: Bolt"]
    with pytest.raises(KeyError, match="nope"):
        build_item_text(items, ["nope"])


def test_dataset_stats_and_reference_check():
    d = _domain({"a": [0, 1, 2, 3], "b": [4, 2], "c": [1, 2, 0]}, 6)
    st = dataset_stats(d)
    assert st["users"] == 3 and st["items"] == 6 and st["items_used"] == 5 and st["interactions"] == 9
    assert st["density"] == pytest.approx(9 / 18)
    assert st["length_quantiles"]["p50"] == 3 and st["length_quantiles"]["max"] == 4
    full = dataset_stats(leave_one_out(d, P))
    assert full["split"] == {"train_users": 3, "train_interactions": 5, "valid_users": 2, "test_users": 2,
                             "train_only_users": 1}
    assert flatten_stats(full)["toy.users"] == 3
    assert check_reference(full, {"toy.users": 3}) == []
    assert check_reference(full, {"toy.items": 7}) == ["toy.items: got 6, reference 7"]
