"""The benchmark scripts: helpers (fast, synthetic) and a smoke run of each script on real data.

The smoke runs use ``benchmarks.run_all.QUICK`` (tiny sizes: seconds each, numbers meaningless)
and check that every script writes a valid result JSON with the environment record, and that
``write_markdown`` and the scaling plot work on them. They need ``XDTUTOR_DATA_DIR``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `benchmarks` is a folder of the repository, not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks import common, run_all  # noqa: E402
from benchmarks.bench_scaling import fit_power_law  # noqa: E402
from benchmarks.plot_scaling import plot_scaling  # noqa: E402

ENV_KEYS = {"date_utc", "device", "device_name", "python", "torch", "transformers", "machine", "cpu_count",
            "load_avg_1min_start", "load_avg_1min_end"}


def test_fit_power_law_recovers_exponent():
    sizes = np.array([100, 250, 500, 1000, 4000])
    fit = fit_power_law(sizes, 3e-4 * sizes ** 1.3)
    assert fit["b"] == pytest.approx(1.3, abs=1e-9)
    assert fit["c"] == pytest.approx(3e-4, rel=1e-9)
    assert fit["r2"] == pytest.approx(1.0)
    noisy = fit_power_law(sizes, 2.0 * sizes * np.array([1.1, 0.9, 1.05, 0.95, 1.0]))
    assert 0.9 < noisy["b"] < 1.1 and noisy["r2"] < 1.0
    assert math.isnan(fit_power_law([10], [1.0])["b"])  # one point: no line


def test_peak_table_lookup():
    assert common.peak_bf16_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert common.peak_bf16_tflops("NVIDIA H100 PCIe") == 756.0
    assert common.peak_bf16_tflops("NVIDIA H200") == 989.0
    assert common.peak_bf16_tflops("Tesla T4") is None


def test_peak_memory_sees_an_allocation():
    import torch

    import gc

    gc.collect()  # memory freed inside the block (earlier tests' garbage) would hide part of the rise
    with common.peak_memory(torch.device("cpu")) as mem:
        block = np.ones(128 * 2**20 // 8)  # 128 MiB, touched
        block.sum()
    del block
    assert mem.seconds > 0
    assert mem.mib > 64, mem  # RSS rose by (most of) the 128 MiB


def _fake_result(out: Path, name: str, rows: list[dict]) -> None:
    import argparse

    import torch

    args = argparse.Namespace(out=str(out), device="cpu", seed=0)
    common.write_result(name, args, common.environment(torch.device("cpu")), rows, {"ratio": 1.25},
                        title=f"{name} title")


def test_write_result_and_markdown(tmp_path):
    _fake_result(tmp_path, "scaling", [{"a": 1, "b": 0.123456}])
    _fake_result(tmp_path, "encoding", [{"impl": "x", "texts_per_s": 10.0}])
    data = json.loads((tmp_path / "encoding.json").read_text())
    assert ENV_KEYS <= set(data["env"]) and data["rows"] == [{"impl": "x", "texts_per_s": 10.0}]
    assert "shared_cpu" in data["env"]
    md = common.write_markdown(tmp_path).read_text()
    assert md.index("### encoding title") < md.index("### scaling title")  # fixed order
    assert "| impl | texts_per_s |" in md and "| 1 | 0.1235 |" in md and "**ratio**: 1.25" in md
    assert "shared machine" in md


def test_plot_scaling_returns_axes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [{"titles_encoded": n, "encode_s": n / 100, "items": 10 * n, "train_step_s": n / 1000,
             "eval_users": n, "eval_s": n * n / 1e6} for n in (100, 200, 400)]
    fits = {"encode_s ~ titles": {"b": 1.0, "c": 0.01}}
    fig, ax = plt.subplots()
    assert plot_scaling(rows, fits, ax=ax) is ax
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert len(ax.get_lines()) == 4  # three stages + one fitted line
    plt.close(fig)


# ----------------------------------------------------------------------------- smoke runs (real data)

SCRIPTS = ["encoding", "evaluation", "training", "scaling", "memory"]


@pytest.mark.slow
@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_script_smoke(name, data_dir, tmp_path, monkeypatch):
    import importlib

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("XDTUTOR_CACHE_DIR", str(tmp_path / "cache"))
    module = importlib.import_module(run_all.BENCHMARKS[name])
    out = module.main(["--device", "cpu", "--threads", "1", "--out", str(tmp_path), *run_all.QUICK[name]])
    data = json.loads((tmp_path / f"{name}.json").read_text())
    assert data["benchmark"] == name and ENV_KEYS <= set(data["env"])
    assert data["env"]["device"] == "cpu" and data["rows"] and data["rows"] == json.loads(json.dumps(out["rows"]))
    assert set(data["columns"]) <= set().union(*(r.keys() for r in data["rows"]))
    if name == "encoding":
        assert data["summary"]["max_abs_diff_fp32"] < 1e-4            # same model, same numbers
        assert data["summary"]["speed_ratio_xdtutor_over_peer_fp32"] > 0
    if name == "evaluation":
        sci = data["summary"]["scientific"]
        # batched and one-row forward passes may differ in the last float bit: a near-tie can flip.
        # A flipped user moves a mean metric by at most 1/n, so the metrics may differ by no more than
        # the share of users whose ranks differ.
        assert sci["ranks_equal_loop_fraction"] >= 0.95
        assert sci["max_abs_metric_diff_vs_loop"] <= 1 - sci["ranks_equal_loop_fraction"] + 1e-12
        assert sci["max_abs_metric_diff_vs_torchmetrics"] < 1e-6
    if name == "scaling":
        assert (tmp_path / "scaling.png").stat().st_size > 1000
        assert set(data["summary"]["power_laws"]) == {"encode_s ~ titles", "train_step_s ~ items",
                                                      "eval_s ~ users*items"}
    if name == "memory":  # chunking must lower the peak, and the 16 GB extrapolation must be there
        by = {(r["items"], r["setting"]): r["peak_mib"] for r in data["rows"]}
        # at 20,000 items x 2,000 targets the unchunked logits alone are 160 MB: far above RSS noise
        assert by[(20000, "logits_chunk=256")] < by[(20000, "logits_chunk=0")]
        assert "unchunked_over_chunked_peak_at_largest" in data["summary"]
    md = common.write_markdown(tmp_path).read_text()
    assert data["title"] in md


@pytest.mark.slow
def test_end_to_end_smoke(data_dir, tmp_path, monkeypatch):
    from benchmarks import bench_end_to_end

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = bench_end_to_end.main(["--device", "cpu", "--threads", "1", "--out", str(tmp_path),
                                 "--timeout", "600", *run_all.QUICK["end_to_end"]])
    (row,) = out["rows"]
    assert row["status"] == "ok", row
    assert row["wall_s"] > 0 and row["methods"] >= 1 and "best_method" not in row  # timing only
    assert json.loads((tmp_path / "end_to_end.json").read_text())["rows"][0]["config"] == "kitchen_to_food"


def test_time_steps_of_the_negatives_benchmark_trains_and_times():
    """bench_negatives.time_steps: positive seconds per step, and the steps really update the model."""
    from benchmarks.bench_negatives import time_steps
    from xdtutor.models import SASRec
    from xdtutor.utils import pad_left

    torch.manual_seed(0)
    model = SASRec(30, hidden=16, n_layers=1, n_heads=2, max_len=8).score_only(20)  # items 20-29: a source
    rows = pad_left([list(range(i, i + 6)) for i in range(20)], 9)      # (20, 9) windows
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for negatives in ("all", "in_batch", "per_domain"):
        s = time_steps(model, rows[:, :-1], rows[:, 1:], negatives, steps=2, batch_size=8)
        assert s > 0
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters())


def test_recbole_rows_and_ratios():
    """The RecBole comparison's table: throughput from the median epoch, ratios RecBole/xdtutor of the
    means over seeds, and the NDCG difference as xdtutor − RecBole with a Welch interval over seeds."""
    from benchmarks.bench_recbole import row, summarise

    def raw(fit_s, epoch_s, eval_s, ndcg, rows):
        return {"params": 1, "train_rows": rows, "train_targets": 300, "epochs": 3, "best_epoch": 2,
                "fit_s": fit_s, "train_epoch_s": [epoch_s, 100 * epoch_s, epoch_s], "valid_epoch_s": [1.0],
                "eval_test_median_s": eval_s, "test_ndcg@10": ndcg, "test_recall@10": 0.1}

    rows = []
    for seed, (a, b) in enumerate([(0.060, 0.050), (0.062, 0.052), (0.061, 0.051)]):
        rows.append(row("xdtutor", seed, raw(10.0, 2.0, 1.0, a, rows=100)))
        rows.append(row("RecBole", seed, raw(60.0, 10.0, 4.0, b, rows=300)))
    assert rows[0]["train_epoch_s"] == 2.0 and rows[0]["train_seq_per_s"] == 50.0  # median, not mean
    assert rows[1]["train_targets_per_s"] == 30.0
    s = summarise(rows)
    assert (s["time_to_converged_ratio"], s["train_epoch_ratio"], s["eval_speed_ratio"]) == (6.0, 5.0, 4.0)
    d = s["test_ndcg@10_diff"]
    assert d["diff"] == pytest.approx(0.010) and 0 < d["diff_low"] < 0.010 < d["diff_high"]  # unpaired runs
    assert s["test_ndcg@10_mean_sd"]["RecBole"] == (0.051, 0.001)


def test_seconds_at_patience_puts_two_stopping_rules_on_one_footing():
    from benchmarks.bench_recbole import seconds_at_patience

    row = {"best_epoch": 5, "valid_s": 1.0}
    epochs = [10.0] * 11  # a run that waited 6 epochs after its best
    assert seconds_at_patience(row, epochs, patience=5) == 10 * 10.0 + 10 * 1.0
    assert seconds_at_patience(row, epochs[:7], patience=5) == 7 * 10.0 + 7 * 1.0  # stopped earlier: as run


# ----------------------------------------------------------------------------- run budget (a lent GPU's time)

def test_run_all_budget_stops_the_running_benchmark_and_skips_the_rest(tmp_path, monkeypatch, capsys):
    """``--budget``: the benchmark running when the budget is spent is stopped (``run_child`` returns None),
    later ones are not started, the footer names both, the exit is 1."""
    calls = []

    def fake_run(cmd, timeout=None):
        calls.append((cmd[2], timeout))
        return None

    monkeypatch.setattr(run_all, "run_child", fake_run)
    rc = run_all.main(["--out", str(tmp_path), "--only", "training", "encoding", "--budget", "30"])
    assert rc == 1
    assert [c[0] for c in calls] == ["benchmarks.bench_training"]   # encoding never started
    assert 29 <= calls[0][1] <= 30                                    # the child got what was left
    footer = (tmp_path / "latest.md").read_text()
    assert "stopped by the 30 s budget: training" in footer and "not run (budget spent): encoding" in footer


def test_run_all_gives_end_to_end_a_timeout_inside_the_budget(tmp_path, monkeypatch):
    """end_to_end gets a total limit below what is left (for all its configs together), so it reports a
    stopped run itself; its per-config ``--timeout`` is passed on."""
    seen = {}

    def fake_run(cmd, timeout=None):
        seen["cmd"], seen["timeout"] = cmd, timeout
        return 0

    monkeypatch.setattr(run_all, "run_child", fake_run)
    assert run_all.main(["--out", str(tmp_path), "--only", "end_to_end", "--budget", "100",
                         "--e2e-timeout", "500"]) == 0
    total = float(seen["cmd"][seen["cmd"].index("--total-timeout") + 1])
    assert total < seen["timeout"] <= 100 and total >= 80
    assert seen["cmd"][seen["cmd"].index("--timeout") + 1] == "500.0"


def test_run_child_kills_what_the_benchmark_started(tmp_path):
    """A benchmark stopped by the budget goes with its children (the end-to-end benchmark's ``xdtutor run``):
    ``run_child`` kills its whole process group."""
    import os
    import time

    pid_file = tmp_path / "pid"
    code = (f"import subprocess, time; p = subprocess.Popen(['sleep', '60']); "
            f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    assert run_all.run_child([sys.executable, "-c", "pass"], timeout=30) == 0
    assert run_all.run_child([sys.executable, "-c", code], timeout=3) is None
    grandchild = int(pid_file.read_text())
    for _ in range(50):
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        if open(f"/proc/{grandchild}/stat").read().split()[2] == "Z":  # killed, not yet reaped
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the benchmark's child outlived it")


def test_end_to_end_sets_a_gpu_run_beside_the_committed_cpu_run(tmp_path):
    """bench_end_to_end.committed_counterpart: the committed converged run's part for seed 0 (its wall time,
    device, and each training with epochs and stop reason, source pretraining first);
    progress_of: what a stopped run's folder had finished and the epoch each unfinished training reached."""
    from benchmarks import bench_end_to_end as e2e

    res = json.loads((ROOT / "results" / "kitchen_to_food_converged.json").read_text())
    part = next(p for p in res["parts"] if p["seeds"] == [0])
    ref = e2e.committed_counterpart("kitchen_to_food_converged", [0])
    assert ref["wall_s"] == round(part["wall_seconds"], 1) and ref["device"] == part["device"]
    assert ref["trainings"][0]["method"] == "source" and {t["seed"] for t in ref["trainings"]} == {0}
    trained = {t["method"] for t in ref["trainings"]}
    assert {"full_finetune", "sasrec", "text"} <= trained and "popularity" not in trained
    assert e2e.committed_counterpart("kitchen_to_food_converged", [7]) is None
    assert e2e.committed_counterpart("no_such_config", [0]) is None

    run = tmp_path / "run"
    (run / "progress" / "seed0").mkdir(parents=True)
    row = {"method": "sasrec", "kind": "baseline", "seed": 0, "best_epoch": 12, "stop_reason": "patience",
           "train_seconds": 41.04}
    (run / "progress" / "seed0" / "sasrec.json").write_text(json.dumps({"rows": [row]}))
    (run / "models" / "seed0" / "text").mkdir(parents=True)
    (run / "models" / "seed0" / "text" / "last.json").write_text(json.dumps({"epoch": 7}))
    (tmp_path / "ck" / "a1b2").mkdir(parents=True)
    (tmp_path / "ck" / "a1b2" / "last.json").write_text(json.dumps({"epoch": 3}))
    got = e2e.progress_of(run, tmp_path / "ck")
    assert got["finished"] == [{"method": "sasrec", "seed": 0, "best_epoch": 12, "stop_reason": "patience",
                                "train_s": 41.0}]
    assert got["last_epoch"] == {"seed0/text": 7, "source/a1b2": 3}
    with pytest.raises(Exception, match="no configs/nope.yaml"):
        e2e.config_name("nope")


@pytest.mark.slow
def test_gpu_check_without_cuda_leaves_the_committed_gpu_results_alone(tmp_path):
    """``bash benchmarks/gpu_check.sh`` on a machine without CUDA runs the gpu tests (they skip) and exits 0,
    writing its log to a temporary folder, not over ``benchmarks/results/gpu/gpu_check.log`` (it once did);
    with ``$OUT`` set it brings back the log and one archive; a budget that is not whole seconds is refused."""
    import os
    import subprocess

    if torch.cuda.is_available():
        pytest.skip("on a CUDA machine this is the real check")
    committed = ROOT / "benchmarks" / "results" / "gpu" / "gpu_check.log"
    before = committed.read_bytes() if committed.exists() else None
    env = {**os.environ, "TMPDIR": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    env.pop("OUT", None)
    done = subprocess.run(["bash", "benchmarks/gpu_check.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "no CUDA here" in (tmp_path / "xdtutor-gpu-check" / "gpu_check.log").read_text()
    assert (committed.read_bytes() if committed.exists() else None) == before
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run(["bash", "benchmarks/gpu_check.sh"], cwd=ROOT, env={**env, "OUT": str(out)},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and sorted(p.name for p in out.iterdir()) == ["gpu_check.log", "gpu_results.tar.gz"]
    bad = subprocess.run(["bash", "benchmarks/gpu_check.sh"], cwd=ROOT, env={**env, "GPU_CHECK_BUDGET": "5.5"},
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "GPU_CHECK_BUDGET must be whole seconds" in bad.stdout + bad.stderr


@pytest.mark.slow
def test_the_gpu_width_job_runs_end_to_end_as_a_ci_scale_dry_run(tmp_path, data_dir):
    """``WIDTH_SCALE=ci bash scripts/gpu_scientific_width.sh`` runs the GPU job's three stages anywhere: both
    searches side by side, a config with their choices, three seeds combined and published, all packed into
    the one archive the device tool brings back, without model files (it once hung for ever: a bare
    ``wait`` also waited for the log's ``tee``)."""
    import os
    import subprocess
    import tarfile

    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "OUT": str(out), "TMPDIR": str(tmp_path), "WIDTH_SCALE": "ci", "OMP_NUM_THREADS": "1",
           "XDTUTOR_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(["bash", "scripts/gpu_scientific_width.sh"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, (out / "gpu_width.log").read_text()[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["gpu_width.log", "gpu_width.tar.gz"]
    with tarfile.open(out / "gpu_width.tar.gz") as tar:
        names = tar.getnames()
        chosen = yaml.safe_load(tar.extractfile("./scientific_width.yaml"))
        searched = [json.load(tar.extractfile(f"./results/tune_scientific_{m}_width.json")) for m in ("text", "text_id")]
        run = json.load(tar.extractfile("./results/scientific_width.json"))
        reference = json.load(tar.extractfile("./results/scientific_width_reference.json"))
    assert not [n for n in names if n.endswith((".safetensors", ".pt"))]
    assert chosen["per_method"] == {**searched[0]["per_method"], **searched[1]["per_method"]} == run["config"]["per_method"]
    assert run["seeds"] == [0, 1, 2] and run["scale"] == "ci"
    # the seeds ran from the config stage 2 wrote, not from the committed one (which may hold the same values)
    assert run["config_file"] == str(tmp_path / "gpu_width" / "scientific_width.yaml")
    assert reference["config_file"] == "configs/scientific_width_reference.yaml" and reference["seeds"] == [0, 1, 2]
    assert not reference["config"]["per_method"]


def test_a_gpu_job_records_the_commit_its_prepare_saw(tmp_path, monkeypatch):
    """The device's copy of the repository keeps the ``.git`` of when the session began, so results made
    there named that commit (``…-dirty``). ``--prepare`` writes the checkout's commit into the carry,
    ``gpu_env.sh`` exports it, and :func:`xdtutor.provenance.git_commit` returns it."""
    import os
    import subprocess

    from xdtutor.provenance import git_commit

    import hashlib

    carry = tmp_path / "carry"
    carry.mkdir()
    (carry / "git_commit").write_text("0123abcd\n")
    script = (f'ROOT={ROOT}; CARRY={carry}; PY={sys.executable}; source benchmarks/gpu_env.sh; '
              'echo "got $XDTUTOR_GIT_COMMIT"')
    env = {k: v for k, v in os.environ.items() if k != "XDTUTOR_GIT_COMMIT"}

    def exported() -> str:
        done = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        return done.stdout.split("got ")[-1].strip() if "got " in done.stdout else done.stdout + done.stderr

    assert exported() == "0123abcd"
    # the files' hashes as --prepare saw them: unchanged here, so the commit stands …
    real = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    (carry / "tree.sha256").write_text(f"{real}  pyproject.toml\n")
    assert exported() == "0123abcd"
    # … and a tracked file edited after --prepare makes it "-dirty"
    (carry / "tree.sha256").write_text(f"{'0' * 64}  pyproject.toml\n")
    assert exported() == "0123abcd-dirty"
    monkeypatch.setenv("XDTUTOR_GIT_COMMIT", "0123abcd")
    assert git_commit() == "0123abcd" and git_commit(ROOT) != "0123abcd"  # an explicit checkout is read as it is
    monkeypatch.delenv("XDTUTOR_GIT_COMMIT")
    assert git_commit() == git_commit(ROOT)


def test_benchmarks_read_data_the_way_the_package_does(tmp_path, monkeypatch):
    """Without ``XDTUTOR_DATA_DIR`` the benchmarks use the package's download cache (they used to exit,
    so ``make bench`` failed on any machine without the authors' data folder); a variable that names no
    folder is still a clear error."""
    from benchmarks import common

    monkeypatch.delenv("XDTUTOR_DATA_DIR", raising=False)
    assert common.data_dir() is None
    monkeypatch.setenv("XDTUTOR_DATA_DIR", str(tmp_path))
    assert common.data_dir() == tmp_path
    monkeypatch.setenv("XDTUTOR_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(SystemExit, match="is not a folder"):
        common.data_dir()
