"""load_dataset: protocols, leakage-free source histories, subsampling, caching."""

import time

import numpy as np
import pytest

from xdtutor.data import dataset_stats, load_dataset, load_domain
from xdtutor.data.build import sample_users
from xdtutor.data.errors import NotADatasetError
from xdtutor.data.preprocess import check_reference
from xdtutor.data.registry import get_spec


def _oracle_source_history(mixed, is_target, to_source, stage):
    """Source items before the target item predicted at ``stage``, by walking the mixed sequence."""
    target_pos = [i for i, x in enumerate(mixed) if is_target(x)]
    k = len(target_pos) - 1 if stage == "test" else len(target_pos) - 2
    cut = target_pos[k]
    return [to_source(x) for x in mixed[:cut] if not is_target(x)]


@pytest.fixture
def fk(fixture_data):
    return load_dataset("food_kitchen", data_dir=fixture_data, verify=False)


def test_food_target_protocol(fk):
    t = fk.target
    assert t.domain.name == "food" and [s.name for s in fk.sources] == ["kitchen"]
    assert sorted(t.test.users) == ["A:1", "overlap:1", "test:1", "valid:1"]  # >= 3 Food items
    assert t.train["A:2"].tolist() == [1, 3] and t.train["overlap:2"].tolist() == [3, 1]  # train-only
    i = t.test.users.index("test:1")
    assert t.test.targets[i] == 0 and t.test.histories[i].tolist() == [1, 2, 3]
    assert t.valid.targets[t.valid.users.index("test:1")] == 3
    assert fk.overlap == {"overlap:1", "overlap:2", "valid:1", "test:1"}
    assert "Food" in t.protocol.split and t.protocol.subsample == 1.0


def test_source_history_cuts_at_target_split_hand_made(fk):
    # test:1 mixed line: K1, F1, F2, F3, K2, F0 -> Food [1,2,3,0] (valid 3, test 0), Kitchen [1, 2].
    assert fk.source_history("test:1", "test").tolist() == [1, 2]
    assert fk.source_history("test:1", "valid").tolist() == [1]  # K2 came after the valid item F3
    assert fk.source_history("test:1", "train").tolist() == [1]
    # overlap:1: F0 K0 F1 K1 F2 K2 -> valid F1, test F2.
    assert fk.source_history("overlap:1", "valid").tolist() == [0]
    assert fk.source_history("overlap:1", "test").tolist() == [0, 1]  # never K2 (after the test item)
    assert fk.source_history("B:1", "test").tolist() == []  # not a target user
    assert fk.source_history("A:1", "test").dtype == np.int64


def _check_no_leakage(ds, raw_mixed, n_food, target):
    is_t = (lambda x: x < n_food) if target == "food" else (lambda x: x >= n_food)
    to_s = (lambda x: x - n_food) if target == "food" else (lambda x: x)
    checked = 0
    for stage in ("valid", "test"):
        for u in getattr(ds.target, stage).users:
            if u not in ds.overlap:
                continue
            expected = _oracle_source_history(raw_mixed[u].tolist(), is_t, to_s, stage)
            assert ds.source_history(u, stage).tolist() == expected, (u, stage)
            checked += 1
    return checked


def test_no_leakage_fixture_both_directions(fixture_data):
    from xdtutor.data.build import parse_cached
    raw = parse_cached("food_kitchen", data_dir=fixture_data, verify=False)
    for target in ("food", "kitchen"):
        ds = load_dataset("food_kitchen", data_dir=fixture_data, verify=False, target=target)
        assert _check_no_leakage(ds, raw.mixed, raw.n_food, target) > 0


def test_kitchen_target_flips_roles(fixture_data):
    ds = load_dataset("food_kitchen", data_dir=fixture_data, verify=False, target="kitchen")
    assert ds.target.domain.name == "kitchen" and ds.sources[0].name == "food"
    assert "test:1" not in ds.target.test.users  # only 2 Kitchen items: train only
    # overlap:1: F0 K0 F1 K1 F2 K2 -> Kitchen valid K1, test K2.
    assert ds.source_history("overlap:1", "test").tolist() == [0, 1, 2]
    assert ds.source_history("overlap:1", "valid").tolist() == [0, 1]
    with pytest.raises(NotADatasetError, match="target"):
        load_dataset("food_kitchen", data_dir=fixture_data, verify=False, target="books")


def test_subsample_is_seeded_and_consistent(fixture_data):
    a = load_dataset("food_kitchen", data_dir=fixture_data, verify=False, subsample=0.5, seed=3)
    b = load_dataset("food_kitchen", data_dir=fixture_data, verify=False, subsample=0.5, seed=3)
    assert set(a.target.train) == set(b.target.train)
    kept = set(a.target.domain.sequences) | set(a.sources[0].sequences)
    assert len(kept) == 4  # round(0.5 * 8 users)
    # A kept overlapping user is kept in both domains.
    for u in kept:
        assert (u in a.target.domain.sequences) == (u.split(":")[0] != "B")
    assert a.overlap <= kept and set(a.source_positions) <= a.overlap
    assert a.target.protocol.subsample == 0.5 and "50% of users" in a.target.protocol.describe()
    assert a.target.domain.n_items == 4  # catalogue not cut
    assert sample_users(["x", "y", "z"], 1.0, 0) == {"x", "y", "z"}
    assert sample_users(["c", "a", "b"], 0.34, 7) == sample_users(["a", "b", "c"], 0.34, 7)
    with pytest.raises(ValueError):
        load_dataset("food_kitchen", data_dir=fixture_data, verify=False, subsample=0.0)


def test_scientific_fixture(fixture_data):
    ds = load_dataset("scientific", data_dir=fixture_data, verify=False)
    assert ds.sources == () and ds.overlap == frozenset()
    assert ds.target.test.targets.tolist() == [3, 2, 4]
    assert "released" in ds.target.protocol.split
    assert load_domain("scientific", data_dir=fixture_data, verify=False).n_users == 3
    sub = load_dataset("scientific", data_dir=fixture_data, verify=False, subsample=0.34, seed=1)
    assert len(sub.target.test) == 1 == len(sub.target.valid) == len(sub.target.train)
    assert sub.target.valid.users == sub.target.test.users


def test_data_dir_may_be_the_dataset_folder(fixture_data):
    ds = load_dataset("scientific", data_dir=fixture_data / "amazon_scientific_cowpirec", verify=False)
    assert len(ds.target.test) == 3


def test_movielens_fixture(fixture_data):
    ds = load_dataset("movielens", data_dir=fixture_data, verify=False)
    assert ds.target.domain.name == "ml-100k" and ds.sources[0].name == "ml-1m"
    assert ds.overlap == frozenset() and ds.source_positions == {}
    assert ds.target.test.users == ["100k_1"] and ds.target.test.targets.tolist() == [0]
    assert dataset_stats(ds)["overlap_items"] == 2  # Heat and Alien are rated in both
    flipped = load_dataset("movielens", data_dir=fixture_data, verify=False, target="ml-1m")
    assert flipped.target.domain.name == "ml-1m" and flipped.target.test.users == ["1m_1"]
    assert load_domain("ml-1m", data_dir=fixture_data, verify=False).n_users == 2


def test_load_domain(fixture_data):
    kitchen = load_domain("kitchen", data_dir=fixture_data, verify=False)
    assert kitchen.name == "kitchen" and kitchen.n_items == 5
    with pytest.raises(NotADatasetError, match="unknown domain"):
        load_domain("books", data_dir=fixture_data)


def test_parsed_arrays_are_read_only(fk):
    with pytest.raises(ValueError):
        fk.target.domain.sequences["A:1"][0] = 3


def test_unknown_dataset_names_known_ones():
    with pytest.raises(NotADatasetError, match="food_kitchen, movielens, scientific"):
        load_dataset("books")


# ---- real data ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_real_food_kitchen_reference_and_no_leakage(data_dir, tmp_cache):
    from xdtutor.data.build import parse_cached
    t0 = time.perf_counter()
    ds = load_dataset("food_kitchen", data_dir=data_dir)
    assert time.perf_counter() - t0 < 10
    stats = dataset_stats(ds)
    assert check_reference(stats, get_spec("food_kitchen").reference) == []
    assert stats["split"]["valid_users"] + stats["split"]["train_only_users"] == 14870
    raw = parse_cached("food_kitchen", data_dir=data_dir)
    assert _check_no_leakage(ds, raw.mixed, raw.n_food, "food") > 10000
    t0 = time.perf_counter()
    load_dataset("food_kitchen", data_dir=data_dir)  # parsed once per process
    assert time.perf_counter() - t0 < 2


@pytest.mark.slow
def test_real_scientific_reference(data_dir, tmp_cache):
    ds = load_dataset("scientific", data_dir=data_dir)
    assert check_reference(dataset_stats(ds), get_spec("scientific").reference) == []
    assert len(ds.target.test) == 8442 and max(len(h) for h in ds.target.test.histories) == 50


@pytest.mark.slow
def test_real_pretraining_sources_hold_nothing_after_the_target_valid_item(data_dir, tmp_cache):
    """Source pretraining sees no interaction later than the user's target valid item (real data).

    Each Kitchen interaction of an overlapping user is located in the user's mixed Food+Kitchen
    history; for users whose Food items are evaluated, every interaction pretraining uses must come
    before the second-last Food item. The full Kitchen sequences (what pretraining used before)
    break this for thousands of interactions.
    """
    from xdtutor.data.build import parse_cached

    ds = load_dataset("food_kitchen", data_dir=data_dir)
    raw = parse_cached("food_kitchen", data_dir=data_dir)
    evaluated = set(ds.target.valid.users)

    def late(sources) -> int:
        """Source interactions of evaluated users that come after their Food valid item."""
        n, seqs = 0, sources[0].sequences
        for u in evaluated & set(seqs):
            mixed = raw.mixed[u]
            is_food = mixed < raw.n_food
            valid_at = np.flatnonzero(is_food)[-2]              # position of the Food valid item
            after = mixed[valid_at + 1:][~is_food[valid_at + 1:]] - raw.n_food
            used = seqs[u]
            # the cut keeps a prefix of the user's Kitchen sequence: it is late if it is longer than
            # the Kitchen items before the valid item
            n += max(0, len(used) - (int((~is_food[:valid_at]).sum())))
            assert len(after) == int((~is_food).sum()) - int((~is_food[:valid_at]).sum())
        return n

    assert late(ds.sources) > 10000                 # the full sequences: what leaked
    assert late(ds.pretraining_sources()) == 0       # what pretraining uses now
    kept = ds.pretraining_sources()[0]
    u = next(u for u in sorted(evaluated & set(kept.sequences)) if len(kept.sequences[u]) < len(ds.sources[0].sequences[u]))
    np.testing.assert_array_equal(kept.sequences[u], ds.source_history(u, "train"))
