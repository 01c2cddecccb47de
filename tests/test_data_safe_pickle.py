import collections
import os
import pickle

import pytest

from xdtutor.data.errors import UnsafePickleError
from xdtutor.data.safe_pickle import safe_load, safe_loads


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_plain_data_round_trips():
    obj = {"B000": 0, "x": [1, 2.5, None, True, ("t", b"b")], "é": "ü"}
    assert safe_loads(pickle.dumps(obj, protocol=4)) == obj


@pytest.mark.parametrize("obj", [_Evil(), collections.OrderedDict(a=1), {"f": os.system}])
@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_any_global_is_refused(obj, protocol):
    data = pickle.dumps(obj, protocol=protocol)
    with pytest.raises(UnsafePickleError, match="refers to the global") as info:
        safe_loads(data, name="evil.pkl")
    assert "evil.pkl" in str(info.value) and info.value.field == "global"


def test_refusal_names_the_file(tmp_path):
    path = tmp_path / "item_set_A.pkl"
    path.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(UnsafePickleError) as info:
        safe_load(path)
    message = str(info.value)
    assert str(path) in message and ".system" in message


def test_truncated_pickle_is_a_clear_error():
    data = pickle.dumps({"a": 1})[:-3]
    with pytest.raises(UnsafePickleError, match="not a readable pickle"):
        safe_loads(data)
