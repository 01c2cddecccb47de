"""The ``xdtutor`` command line (in-process through ``main(argv)``)."""

import json

import pytest

from xdtutor import cli
from xdtutor.data import registry


def test_data_list(capsys):
    assert cli.main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "food_kitchen" in out and "scientific" in out and "ysh-1998/CoWPiRec@db47560" in out


def test_stats_generic_folder(capsys, fixture_data):
    assert cli.main(["data", "stats", "--path", str(fixture_data / "generic_books_movies")]) == 0
    out = capsys.readouterr().out
    assert "books: users 2, items 3" in out and "overlapping users: 2; overlapping items (same raw id): 0" in out and "protocol:" in out
    assert cli.main(["data", "stats", "--json", "--path", str(fixture_data / "generic_books_movies"),
                     "--target", "movies"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["target"] == "movies" and stats["domains"]["movies"]["interactions"] == 6
    assert cli.main(["data", "stats", "--json", "--subsample", "0.5", "--seed", "1", "--path",
                     str(fixture_data / "generic_books_movies")]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert sum(d["users"] for d in stats["domains"].values()) < 5 and "50% of users" in stats["protocol"]


def test_checksum_error_is_one_message(capsys, fixture_data, tmp_cache):
    assert cli.main(["data", "stats", "food_kitchen", "--data-dir", str(fixture_data)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "checksum mismatch" in err and "Traceback" not in err


def test_reference_mismatch_exits_1(capsys, fixture_data, monkeypatch):
    monkeypatch.setattr(registry, "verify_folder", lambda spec, folder: None)
    assert cli.main(["data", "stats", "scientific", "--data-dir", str(fixture_data)]) == 1
    captured = capsys.readouterr()
    assert "reference check: FAILED (0/3 values match)" in captured.out
    assert "reference mismatch: scientific.users: got 3, reference 8442" in captured.err


@pytest.mark.parametrize("argv, code, message", [
    (["data", "stats", "scientific", "--subsample", "2"], 1, "subsample must be in (0, 1]"),
    (["data", "stats", "nope"], 1, "unknown dataset 'nope'"),
    (["data", "stats"], 2, "give a dataset NAME or --path"),
    (["data", "stats", "scientific", "--path", "x"], 2, "give a dataset NAME or --path"),
    (["data", "stats", "--path", "/nonexistent/folder"], 1, "not a generic dataset folder"),
])
def test_errors_exit_nonzero_without_traceback(capsys, argv, code, message):
    assert cli.main(argv) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_run_reads_the_config_with_its_overrides_and_writes_the_run_folder(tmp_path, monkeypatch, capsys):
    from test_results import fake
    from xdtutor import pipeline

    seen = {}

    def run(config, **kwargs):
        seen["config"], seen["folder"] = config, kwargs.get("folder")
        res = fake()
        res.config, res.info = config, {"wall_seconds": 1.0, "protocol_line": "protocol: fake"}
        return res

    monkeypatch.setattr(pipeline, "run_experiment", run)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("name: tiny\ntrain:\n  epochs: 3\n")
    assert cli.main(["run", str(cfg), "--set", "train.epochs=2", "--set", "name=a=b", "--out", str(tmp_path / "o")]) == 0
    assert seen["config"].train.epochs == 2 and seen["config"].name == "a=b"
    saved = json.loads((tmp_path / "o" / "results.json").read_text())
    assert saved["overrides"] == ["train.epochs=2", "name=a=b"] and saved["config_file"] == str(cfg)
    assert "protocol: fake" in capsys.readouterr().out
    assert seen["folder"].path == tmp_path / "o"
    again = ["run", str(cfg), "--set", "train.epochs=2", "--set", "name=a=b", "--out", str(tmp_path / "o")]
    assert cli.main(again) == 1                              # a finished run is not overwritten silently
    assert "holds a finished run" in capsys.readouterr().err
    assert cli.main([*again, "--overwrite"]) == 0
    (tmp_path / "file").write_text("x")
    assert cli.main(["run", str(cfg), "--out", str(tmp_path / "file" / "sub")]) == 1  # fails before training
    assert "cannot write there" in capsys.readouterr().err
    assert cli.main(["run", str(cfg), "--set", "novalue"]) == 1
    assert "key=value" in capsys.readouterr().err
    assert cli.main(["run", str(tmp_path / "missing.yaml")]) == 1
    assert "cannot read the config" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("name, expect", [
    ("scientific", ["scientific: users 8,442, items 4,385", "interactions 59,427", "reference check: OK (3/3"]),
    ("food_kitchen", ["food: users 14,870, items 8,661", "kitchen: users 47,589, items 27,637",
                      "overlapping users: 9,398", "reference check: OK (7/7"]),
    ("movielens", ["ml-100k: users 943, items 1,664", "ml-1m: users 6,040, items 3,883 (3,706 used)",
                   "overlapping items (same raw id): 1,539", "reference check: OK (8/8"]),
])
def test_real_stats_match_reference(capsys, data_dir, name, expect):
    assert cli.main(["data", "stats", name, "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    for e in expect:
        assert e in out


def test_version_debug_and_an_unavailable_device(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.startswith("xdtutor ")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("name: tiny\n")
    import torch

    if not torch.cuda.is_available():  # asking for a GPU the machine lacks fails before any work
        assert cli.main(["run", str(cfg), "--set", "device=cuda", "--out", str(tmp_path / "o")]) == 1
        err = capsys.readouterr().err
        assert "no CUDA GPU" in err and "--debug shows the traceback" in err and "Traceback" not in err
        with pytest.raises(ValueError, match="no CUDA GPU"):   # --debug: the exception itself
            cli.main(["--debug", "run", str(cfg), "--set", "device=cuda", "--out", str(tmp_path / "o2")])
        # after the command too, where a reader following the hint puts it
        with pytest.raises(ValueError, match="no CUDA GPU"):
            cli.main(["run", str(cfg), "--set", "device=cuda", "--out", str(tmp_path / "o3"), "--debug"])
    # a command without the flag keeps what the top-level one said, and the default stays off
    assert cli.build_parser().parse_args(["--debug", "data", "list"]).debug is True
    assert cli.build_parser().parse_args(["data", "list"]).debug is False


def test_a_command_leaves_the_root_logger_as_it_was(tmp_path, capsys):
    """main() also runs in-process (these tests, a notebook): a handler it left on the root logger kept
    writing to a closed test stream, and one left at DEBUG made every later library debug record
    (markdown-it logs one per parsed block) print a traceback — parsing a chapter took seconds."""
    import logging

    root = logging.getLogger()
    before = root.level, list(root.handlers)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("name: tiny\n")
    assert cli.main(["--debug", "data", "list"]) == 0
    assert (root.level, list(root.handlers)) == before
    with pytest.raises(Exception):
        cli.main(["--debug", "run", str(cfg), "--set", "no_such_key=1", "--out", str(tmp_path / "o")])
    assert (root.level, list(root.handlers)) == before
