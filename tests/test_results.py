"""The results model: summary with sample std, selection, gains, stop reasons, files old and new."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from test_experiment import MICRO
from xdtutor.experiment import build_config
from xdtutor.readings import budget_table
from xdtutor.report import STALE_NOTES, refresh_markdown
from xdtutor.results import Results, find_results, upgrade
from xdtutor.train import History
from xdtutor.utils import jsonable

ROOT = Path(__file__).resolve().parents[1]


def fake(name="k2f", scale="full", date="2026-11-28 08:00:00", stops=("patience", "patience"),
         seeds=(0,), caps=(15, 6)) -> Results:
    """Two baselines and one transfer method; ``lora`` is the best transfer, ``text`` the best baseline."""
    def hist(reason):
        return History(epochs=[1, 2, 3], train_loss=[3.0, 2.0, 1.5], best_epoch=2, epoch_seconds=[1.0, 1.0, 1.0],
                       valid_metrics=[{"ndcg@10": v} for v in (.01, .03, .02)], best_metric=.03, stop_reason=reason)

    rows = []
    for s in seeds:
        for method, kind, n in (("popularity", "baseline", .02), ("text", "baseline", .03), ("lora", "transfer", .04)):
            v = n + 0.001 * s
            rows.append({"method": method, "kind": kind, "seed": s,
                         "metrics": {"recall@10": 2 * v, "ndcg@10": v, "recall@50": 3 * v, "ndcg@50": v},
                         "valid": {"ndcg@10": v + 0.001},
                         "by_user_type": {}, "trainable_params": 10, "total_params": 20, "train_seconds": 3.0})
    cfg = build_config({**MICRO, "name": name, "scale": scale, "seeds": list(seeds),
                        "pretrain": {"max_train_minutes": caps[0]}, "train": {"max_train_minutes": caps[1]}})
    return Results(cfg, rows=rows, info={"date": date, "scale": scale},
                   histories={"source/0": hist(stops[0]), "lora/0": hist(stops[1]), "empty/0": History()})


def test_summary_uses_the_sample_std_and_nan_for_one_seed():
    one = fake().summary().set_index("method")
    assert math.isnan(one.loc["lora", "ndcg@10_std"]) and one.loc["lora", "seeds"] == 1
    three = fake(seeds=(0, 1, 2)).summary().set_index("method")
    assert three.loc["lora", "ndcg@10"] == pytest.approx(.041)
    assert three.loc["lora", "ndcg@10_std"] == pytest.approx(0.001)  # ddof=1: sqrt(((.001)^2 * 2) / 2)
    assert three.loc["lora", "seeds"] == 3


def test_best_is_chosen_on_validation_never_on_test():
    res = fake()
    # popularity is the best baseline on validation, text on test: the choice follows validation
    for r in res.rows:
        if r["method"] == "popularity":
            r["valid"] = {"ndcg@10": 0.5}
    assert res.best("baseline") == ("popularity", .02)  # its *test* value is reported
    assert res.gain()["best_baseline"] == "popularity" and res.gain()["selected_on"] == "validation"
    for r in res.rows:
        if r["method"] == "popularity":
            r["valid"] = {}  # a method without a validation score cannot be chosen
    assert res.best("baseline")[0] == "text"


def test_best_gain_and_gain_vs():
    res = fake()
    assert res.best("transfer") == ("lora", .04) and res.best("baseline") == ("text", .03)
    g = res.gain()
    assert g["best_transfer"] == "lora" and g["relative_gain"] == pytest.approx(1 / 3)
    gv = res.gain_vs("popularity")
    assert gv["best_transfer"] == "lora" and gv["relative_gain"] == pytest.approx(1.0)
    assert res.gain_vs("missing") is None


def test_cold_user_gain():
    res = fake()
    # ridge is better on test, mlp was chosen on validation: the headline is mlp
    res.cold_users = ([{"method": "popularity", "seed": s, "metrics": {"ndcg@10": .02}} for s in (0, 1)]
                      + [{"method": "mapping[mlp]", "seed": s, "metrics": {"ndcg@10": v}, "selected": True}
                         for s, v in ((0, .024), (1, .026))]
                      + [{"method": "mapping[ridge]", "seed": s, "metrics": {"ndcg@10": .03}, "selected": False}
                         for s in (0, 1)])
    c = res.cold_user_gain()
    assert c["best_mapping"] == "mapping[mlp]" and c["mapping"] == pytest.approx(.025)
    assert c["relative_gain"] == pytest.approx(.25) and c["seeds"] == 2
    assert fake().cold_user_gain() is None
    for r in res.cold_users:
        r.pop("selected", None)  # format-1 rows: nothing chosen on validation, so no headline
    assert res.cold_user_gain() is None


def test_stop_reasons_skip_untrained_methods():
    reasons = fake().stop_reasons()
    assert list(reasons["what"]) == ["source", "lora"] and set(reasons["stop_reason"]) == {"patience"}


def test_find_results_newest_first_and_skips_other_files(tmp_path):
    def write(path: Path, res: Results) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(res.to_dict(), default=float))

    write(tmp_path / "a.json", fake(date="2026-11-28 07:00:00"))
    write(tmp_path / "sub" / "b.json", fake(date="2026-11-28 09:00:00"))
    write(tmp_path / "ci.json", fake(scale="ci"))
    write(tmp_path / "other.json", fake(name="other"))
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    found = find_results("k2f", "full", tmp_path)
    assert [p.name for p, _ in found] == ["b.json", "a.json"]
    assert isinstance(found[0][1], Results) and found[0][1].best("transfer")[0] == "lora"
    assert find_results("k2f", "ci", tmp_path)[0][0].name == "ci.json"
    assert find_results("missing", root=tmp_path) == []


def test_budget_table_compares_one_seed_across_runs():
    def run(values: dict, stop: str, epochs: int) -> Results:
        res = fake(seeds=(0, 1))
        res.rows = [{"method": m, "seed": s, "metrics": {"ndcg@10": v + s}} for m, v in values.items() for s in (0, 1)]
        res.histories = {f"{m}/{s}": History(epochs=list(range(epochs)), stop_reason=stop)
                         for m in values if m != "popularity" for s in (0, 1)}
        return res

    short = run({"popularity": .01, "text": .04, "lora": .05}, "time_limit", 12)
    long = run({"popularity": .01, "text": .06}, "patience", 30)
    t = budget_table({"6 min": short, "25 min": long}, seed=0)
    assert list(t.index) == ["popularity", "text"]            # only methods in both runs
    assert t.loc["text", "ndcg@10 (6 min)"] == .04 and t.loc["text", "ndcg@10 (25 min)"] == .06
    assert t.loc["text", "epochs (25 min)"] == 30 and t.loc["text", "stop (6 min)"] == "time_limit"
    assert t.loc["popularity", "stop (25 min)"] == "-" and t.loc["popularity", "epochs (6 min)"] == 0
    assert budget_table({"a": short}, seed=1).loc["text", "ndcg@10 (a)"] == pytest.approx(1.04)
    with pytest.raises(KeyError, match="no rows for seed 5"):
        budget_table({"a": short}, seed=5)


# the pipeline's results files; the others (searches, scripts' studies) are read by their own tests or render_docs
PIPELINE_RESULTS = [p for p in sorted((ROOT / "results").glob("*.json")) if "methods" in json.loads(p.read_text())]


def test_results_folder_has_pipeline_results():
    assert len(PIPELINE_RESULTS) >= 10, [p.name for p in PIPELINE_RESULTS]


@pytest.mark.parametrize("path", PIPELINE_RESULTS, ids=lambda p: p.stem)
def test_committed_results_files_load(path):
    """Every committed results file reads into the current model, the format-1 ones upgraded."""
    d = json.loads(path.read_text())
    res = Results.load(path)
    assert res.name == d["name"] and res.config.scale == d["scale"]
    summary = res.summary().set_index("method")
    # format 1's `lora` trained the adaptor too and is read as `lora_adaptor`; a current file's `lora` is LoRA only
    renamed = {"lora": "lora_adaptor"} if "format" not in d and "lora" in d["config"].get("strategies", []) else {}
    for method, entry in d["methods"].items():  # the numbers are never touched by an upgrade
        assert summary.loc[renamed.get(method, method), "ndcg@10"] == pytest.approx(entry["metrics"]["ndcg@10"], rel=1e-12)
    if "mapping" in d["config"].get("strategies", []):
        assert res.config.cold_users.mappings == ("ridge", "mlp") and "mapping" not in res.config.strategies


def test_upgrade_moves_the_format_1_keys():
    old = {"config": {"strategies": ["lora", "mapping"], "transfer": {"mapping": "ridge", "ridge_alpha": 2.0,
                                                                       "train": {"epochs": 3}},
                      "train": {"device": "cpu", "max_len": 50, "seed": 0, "epochs": 4}},
           "runs": [{"method": "lora", "seed": 0}], "methods": {"lora": {}}, "histories": {"lora/0": {}},
           "cold_users": [{"method": "mapping[mlp]<-lora"}]}
    new = upgrade(old)
    # format-1 "lora" trained the adaptor too (lora_train_adaptor defaulted to true): renamed
    assert new["format"] == "xdtutor.results/2" and new["config"]["strategies"] == ["lora_adaptor"]
    assert new["runs"][0]["method"] == "lora_adaptor" and list(new["methods"]) == ["lora_adaptor"]
    assert list(new["histories"]) == ["lora_adaptor/0"] and new["cold_users"][0]["method"] == "mapping[mlp]<-lora_adaptor"
    assert new["config"]["cold_users"] == {"ridge_alpha": 2.0, "mappings": ["ridge", "mlp"]}
    assert new["config"]["transfer"] == {} and new["config"]["train"] == {"epochs": 4}
    assert old["config"]["strategies"] == ["lora", "mapping"]  # the input is not modified
    assert upgrade(new) is new


def test_helpers_read_a_real_results_file(tmp_path):
    """The model reads what a run saves: a time cap that fired is reported from the recorded stop reasons."""
    from test_pipeline import micro_emb
    from test_transfer import synthetic_dataset
    from xdtutor.pipeline import run_experiment
    from xdtutor.readings import budget_note

    cfg = build_config({**MICRO, "strategies": ["zero_shot", "full_finetune"], "baselines": ["popularity", "text"],
                        "cold_start": {"fractions": []}, "cold_users": {}, "scale": "full",
                        "train": {**MICRO["train"], "max_train_minutes": 1e-6}})
    out = run_experiment(cfg, dataset=synthetic_dataset(), text_emb=micro_emb(), log=None).save(tmp_path / "run")
    (path, res), = find_results("micro", "full", tmp_path)
    assert path == out / "results.json"
    assert set(res.summary()["method"]) == {"popularity", "text", "zero_shot", "full_finetune"}
    assert not res.per_user.empty and isinstance(res.per_user, pd.DataFrame)
    reasons = res.stop_reasons()
    assert set(reasons["what"]) == {"source", "text", "full_finetune"}
    assert set(reasons.loc[reasons["what"] != "source", "stop_reason"]) == {"time_limit"}  # a cap of 60 µs fires
    assert "time cap" in budget_note(res) and "full_finetune (seed 0)" in budget_note(res)


def test_seed_difference_of_a_committed_file_reads_its_seed_rows():
    res = Results.load(Path(__file__).resolve().parents[1] / "results" / "kitchen_to_food.json")
    c = res.seed_difference("full_finetune", "text")
    per_seed = {m: [r["metrics"]["ndcg@10"] for r in res.rows if r["method"] == m] for m in ("full_finetune", "text")}
    assert c["diff"] == pytest.approx(sum(per_seed["full_finetune"]) / 3 - sum(per_seed["text"]) / 3)
    assert c["seeds"] == 3 and c["diff_low"] < c["diff"] < c["diff_high"]
    with pytest.raises(KeyError, match="no rows"):
        res.seed_difference("full_finetune", "nonexistent")


def test_seed_difference_names_the_methods_it_compares():
    """The stats dict's own ``method`` (the kind of interval) must not overwrite the compared method."""
    c = fake(seeds=(0, 1, 2)).seed_difference("lora", "text")
    assert (c["method"], c["vs"], c["interval"]) == ("lora", "text", "welch-t over seeds")


def test_seed_difference_across_files_compares_only_runs_of_the_same_experiment():
    """A run that trained one new strategy is compared with a committed run's rows over the seeds, and
    only when everything but the methods is the same (a file written before the protocol gained fields
    still matches one written after: the defaults compare equal)."""
    from dataclasses import replace

    from xdtutor.readings import across_files_text, comparison_text, versus_text
    from xdtutor.results import seed_difference_across

    conv = Results.load(ROOT / "results" / "kitchen_to_food_converged.json")
    c = seed_difference_across(conv, "full_finetune", conv, "text")
    assert {k: c[k] for k in ("diff", "diff_low", "diff_high", "seeds")} == pytest.approx(
        {k: v for k, v in conv.seed_difference("full_finetune", "text").items()
         if k in ("diff", "diff_low", "diff_high", "seeds")})
    assert (c["method"], c["vs"]) == ("full_finetune", "text")
    newer = Results.load(ROOT / "results" / "kitchen_to_food_mixed_history.json")  # protocol has more keys
    assert set(newer.info["protocol"]) != set(conv.info["protocol"])
    assert seed_difference_across(newer, "mixed_history", conv, "text")["files"] == [
        "kitchen_to_food_mixed_history", "kitchen_to_food_converged"]
    assert "no per-user pairing" in across_files_text(newer, "mixed_history", conv, "text")
    # a run that trained one strategy: its own rows where they ran, the other file's otherwise
    alone = Results(conv.config, rows=[r for r in conv.rows if r["method"] in ("full_finetune", "popularity")],
                    info=conv.info)
    assert versus_text(alone, "full_finetune", "popularity", conv) == comparison_text(alone, "full_finetune",
                                                                                     "popularity")
    assert versus_text(alone, "full_finetune", "text", conv) == across_files_text(alone, "full_finetune", conv,
                                                                                 "text")
    other = Results(replace(conv.config, model=replace(conv.config.model, hidden=128)), rows=conv.rows,
                    info=conv.info)
    with pytest.raises(ValueError, match=r"model\.hidden"):
        seed_difference_across(other, "full_finetune", conv, "text")
    fewer = Results(replace(conv.config, seeds=(0, 1)), rows=conv.rows, info=conv.info)
    with pytest.raises(ValueError, match="seeds"):
        seed_difference_across(fewer, "full_finetune", conv, "text")
    moved = Results(conv.config, rows=conv.rows, info={**conv.info, "protocol": {
        **conv.info["protocol"], "ties": "optimistic"}})
    with pytest.raises(ValueError, match="protocol"):
        seed_difference_across(moved, "full_finetune", conv, "text")
    with pytest.raises(KeyError, match="joint"):
        seed_difference_across(conv, "joint", conv, "text")
    # the same method in two files of the same name (a re-run beside the committed file), seeds in part order
    again = Results(replace(conv.config, seeds=(2, 0, 1)), rows=conv.rows, info=conv.info)
    assert seed_difference_across(again, "text", conv, "text")["diff"] == pytest.approx(0.0)
    # the relative difference is against the second file's method
    text_mean = sum(r["metrics"]["ndcg@10"] for r in conv.rows if r["method"] == "text") / 3
    rel = c["diff"] / text_mean
    assert across_files_text(conv, "full_finetune", conv, "text").startswith(f"{rel:+.1%} (files")
    gpu = Results(conv.config, rows=conv.rows, info={**conv.info, "device_name": "NVIDIA H200"})
    with pytest.raises(ValueError, match="device_name"):
        seed_difference_across(gpu, "full_finetune", conv, "text")
    lone = Results(conv.config, rows=[r for r in conv.rows if r["method"] == "full_finetune"], info=gpu.info)
    assert versus_text(lone, "full_finetune", "sasrec", conv).startswith("not compared (")


def test_every_transfer_is_compared_with_the_same_architecture_without_the_source():
    """``transductive`` (text + ID from θ_s) needs ``text_id`` (text + ID, target only) as a reference,
    as ``full_finetune`` needs ``text``: both are compared, whichever baseline wins on validation."""
    res = fake(seeds=(0, 1))
    res.rows = [r for r in res.rows if r["method"] != "lora"]
    for s in (0, 1):
        for method, kind, v in (("text_id", "baseline", .025), ("transductive", "transfer", .04),
                                ("full_finetune", "transfer", .035)):
            res.rows.append({"method": method, "kind": kind, "seed": s, "metrics": {"ndcg@10": v},
                             "valid": {"ndcg@10": v}, "by_user_type": {}, "trainable_params": 1,
                             "total_params": 1, "train_seconds": 1.0})
    res.per_user = pd.DataFrame([{"method": m, "seed": s, "user": f"u{u}", "rank": 1, "ndcg@10": (u % 3) / 10}
                                 for m in ("popularity", "text", "text_id", "transductive", "full_finetune")
                                 for s in (0, 1) for u in range(30)])
    pairs = {(c["method"], c["vs"]): c["about"] for c in res.compare_all()}
    assert res.best("baseline")[0] == "text"  # on validation
    assert pairs == {(m, ref): "main" for m in ("transductive", "full_finetune") for ref in ("text", "text_id")} | {
        ("text_id", "text"): "ID embedding", ("transductive", "full_finetune"): "ID embedding"}


def _side_pairs(methods: tuple[str, ...]) -> dict:
    """``{(method, vs): about}`` of the comparisons beside the main ones that ``compare_all`` makes when
    ``methods`` ran as transfers (two seeds, per-user rows) next to popularity and text."""
    res = fake(seeds=(0, 1))
    res.rows = [r for r in res.rows if r["method"] != "lora"]
    for s in (0, 1):
        for i, method in enumerate(methods):
            res.rows.append({"method": method, "kind": "transfer", "seed": s, "metrics": {"ndcg@10": .04 - i / 1000},
                             "valid": {"ndcg@10": .04}, "by_user_type": {}, "trainable_params": 1,
                             "total_params": 1, "train_seconds": 1.0})
    res.per_user = pd.DataFrame([{"method": m, "seed": s, "user": f"u{u}", "rank": 1, "ndcg@10": (u % 3) / 10}
                                 for m in ("popularity", "text") + methods for s in (0, 1) for u in range(30)])
    pairs = {(c["method"], c["vs"]): c["about"] for c in res.compare_all() if c["about"] != "main"}
    return pairs


def test_mixed_history_is_compared_with_each_half_of_what_it_combines():
    """``mixed_history`` = θ_s + source items in the histories: it is compared with ``text_mixed`` (the
    histories without θ_s), with ``full_finetune`` (θ_s without the histories) and, as a cross-domain
    model, with the ID model on the same histories; ``joint`` (both domains in one training) with
    ``full_finetune`` (pretrain, then fine-tune)."""
    pairs = _side_pairs(("mixed_history", "text_mixed", "sasrec_mixed", "full_finetune", "joint"))
    assert pairs == {("mixed_history", "sasrec_mixed"): "cross-domain histories",
                     ("text_mixed", "sasrec_mixed"): "cross-domain histories",
                     ("mixed_history", "text_mixed"): "θ_s and source items",
                     ("mixed_history", "full_finetune"): "θ_s and source items",
                     ("joint", "full_finetune"): "joint vs pretrain-then-fine-tune"}


def test_the_menu_is_compared_with_full_fine_tuning():
    """Each other way of carrying θ_s (a penalty towards it, fewer trainable parameters, fusion) is
    compared with plain full fine-tuning, the question a practitioner asks of it; zero-shot (nothing
    fine-tuned) with the popularity prior it lacks."""
    pairs = _side_pairs(("full_finetune", "l2sp", "frozen_adaptor", "lora_adaptor", "fusion", "zero_shot"))
    assert pairs == {(m, "full_finetune"): "vs full fine-tuning"
                     for m in ("l2sp", "frozen_adaptor", "lora_adaptor", "fusion")} | {
        ("zero_shot", "popularity"): "zero-shot vs popularity"}


def test_unisrec_text_id_fine_tuning_is_compared_with_each_half_of_what_it_changes():
    """``frozen_adaptor_id`` = the frozen encoder of ``frozen_adaptor`` plus the IDs of ``transductive``:
    it is compared with the first (what the IDs add) and the second (what freezing the encoder does)."""
    pairs = _side_pairs(("frozen_adaptor_id", "frozen_adaptor", "transductive", "full_finetune"))
    assert pairs == {("frozen_adaptor_id", "frozen_adaptor"): "ID embedding",
                     ("frozen_adaptor_id", "transductive"): "frozen vs trained encoder",
                     ("transductive", "full_finetune"): "ID embedding",
                     ("frozen_adaptor", "full_finetune"): "vs full fine-tuning"}


def test_no_committed_json_stores_a_spread_for_one_seed():
    """The JSON twin of the test below: a summary over one seed stores its std as null, never 0.0."""
    bad = []

    def walk(node, where):
        if isinstance(node, dict):
            if isinstance(node.get("seeds"), list) and isinstance(node.get("std"), dict) and len(node["seeds"]) < 2:
                bad.extend(f"{where}.std.{k}" for k, v in node["std"].items() if v is not None)
            for k, v in node.items():
                walk(v, f"{where}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]")

    for path in sorted((ROOT / "results").glob("*.json")):
        walk(json.loads(path.read_text(encoding="utf-8")), path.name)
    assert not bad, bad[:5]


def test_no_committed_table_gives_one_seed_a_spread():
    """A "± 0.0000" reads as a measured spread of zero: a one-seed row must read "(n = 1)" instead, a
    spread of exactly 0 (every seed the same) "± 0", a spread below the last digit "± <0.0001"."""
    bad = [f"{md.name}:{i}: {line[:80]}" for md in sorted((ROOT / "results").glob("*.md"))
           for i, line in enumerate(md.read_text(encoding="utf-8").splitlines(), 1) if "± 0.0000" in line]
    assert not bad, bad


def _script(name: str):
    """``scripts/<name>.py`` imported as a module (the scripts folder is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_results_tables_are_what_the_code_writes():
    """results/<name>.md is rendered from results/<name>.json (scripts/render_results.py), never edited
    by hand above its notes; and no notes are left marked as written for older numbers."""
    script = _script("render_results")
    files = script.results_files(ROOT / "results")
    assert len(files) >= 10
    for path in files:
        md = path.with_suffix(".md")
        assert md.read_text(encoding="utf-8") == refresh_markdown(Results.load(path), md), (
            f"{md.name} is out of date: python scripts/render_results.py")
        assert STALE_NOTES not in md.read_text(encoding="utf-8"), f"{md.name}: re-read its notes"


def test_every_committed_interval_covers_the_t_interval_over_its_seeds():
    """Each stored difference with an interval and several seeds is at least as wide as the paired t
    interval over the per-seed differences of its file's rows (the two-level bootstrap alone understates
    the seeds' share with three seeds: xdtutor.stats); scripts/seed_intervals.py widens a file that is not."""
    from xdtutor.stats import seed_t_interval

    script = _script("seed_intervals")
    assert script.main(["--check"]) == 0, "python scripts/seed_intervals.py"
    checked = 0
    for path in sorted((ROOT / "results").glob("*.json")):
        if script.widened_results(path) is None:
            continue
        res = Results.load(path)
        for c in res.comparisons:
            if c.get("diff_low") is None or c.get("seeds", 0) < 2:
                continue
            a, b = res.seed_values(c["method"]), res.seed_values(c["vs"])
            low, high = seed_t_interval([a[s] - b[s] for s in sorted(set(a) & set(b))])
            assert c["diff_low"] <= low + 1e-12 and c["diff_high"] >= high - 1e-12, (path.name, c["method"], c["vs"])
            checked += 1
    assert checked >= 50


def test_the_widening_check_ignores_float_noise_but_not_a_change():
    """A freshly run file's per-seed differences come from its per-user rows and the script's from the
    rows' means: the two differ in the last digits, which ``--check`` must not call "not widened"."""
    script = _script("seed_intervals")
    stored = {"seed_diffs": [0.1 + 0.2, -0.002352660230765094], "about": "main", "seeds": 3}
    assert script._close(stored, {"seed_diffs": [0.3, -0.00235266023076509], "about": "main", "seeds": 3})
    assert not script._close(stored, {"seed_diffs": [0.3001, -0.002352660230765094], "about": "main", "seeds": 3})
    assert not script._close(stored, {"seed_diffs": [0.3], "about": "main", "seeds": 3})
    assert not script._close(stored, {**stored, "about": "other"})
    assert script._close({"low": 0}, {"low": 1e-17}) and not script._close({"low": 0}, {"low": 1e-6})
    assert not script._close({"flag": True}, {"flag": 1.0})


def test_committed_summaries_are_what_the_rows_give():
    """A results file's derived fields — each method's mean ± sample std (ddof=1; null for one seed) and
    the headline gain (best transfer and baseline chosen on validation) — are what its rows give today:
    the oldest files had population spreads and a transfer chosen on test stored beside their rows."""
    script = _script("render_results")
    widening = _script("seed_intervals")
    same = widening._close  # up to the last digits: a run sums per-user rows, the reader the rows' means
    for path in script.results_files(ROOT / "results"):
        stored = upgrade(json.loads(path.read_text(encoding="utf-8")))  # an old file in today's names
        derived = json.loads(json.dumps(jsonable(Results.load(path).to_dict())))
        assert same(derived["methods"], stored["methods"]), f"{path.name}: stored 'methods' is stale"
        # an old file keeps the fields it had (no stored comparison): those must agree
        gain = derived["gain"] and {k: derived["gain"][k] for k in stored["gain"] or {}}
        assert same(gain, stored["gain"]), f"{path.name}: stored 'gain' is stale"


def test_the_joint_config_at_full_scale_is_comparable_with_the_converged_run():
    """``configs/kitchen_to_food_joint.yaml`` trains only ``joint``; its references are the converged
    run's rows, so the two configs must agree in everything the comparison checks."""
    from xdtutor.experiment import load_config
    from xdtutor.results import seed_difference_across

    conv = Results.load(ROOT / "results" / "kitchen_to_food_converged.json")
    cfg = load_config(ROOT / "configs" / "kitchen_to_food_joint.yaml", ["scale=full"])
    assert cfg.strategies == ("joint",) and cfg.for_method("joint").train.negatives == "per_domain"
    rows = [{**r, "method": "joint", "kind": "transfer"} for r in conv.rows if r["method"] == "full_finetune"]
    joint = Results(cfg, rows=rows, info=conv.info)
    assert seed_difference_across(joint, "joint", conv, "full_finetune")["diff"] == pytest.approx(0.0)


def test_a_transfer_from_another_theta_s_is_compared_with_baselines_and_with_transfers_only_when_asked():
    """A file whose θ_s was pretrained with another recipe (``pretrain.*``, ``model.dropout``) is compared
    with another file's target-only baseline — a baseline has no θ_s, and a setting the baseline sets for
    itself (``per_method``) is its own — and the differing settings are named; against another file's
    transfer, or a baseline that shares the setting, it is not compared unless the caller allows it."""
    from dataclasses import replace

    from xdtutor.readings import across_files_text
    from xdtutor.results import seed_difference_across

    menu = Results.load(ROOT / "results" / "kitchen_to_food_menu.json")
    tuned = Results.load(ROOT / "results" / "kitchen_to_food_tuned.json")
    dropout = tuned.config.per_method["text"]["model.dropout"]
    cfg = replace(menu.config, pretrain=replace(menu.config.pretrain, lr=0.0026, epochs=100),
                  model=replace(menu.config.model, dropout=dropout))
    other = Results(cfg, rows=menu.rows, info=menu.info)
    # each row's own config: the text row trained with the same dropout (its per_method), so only how θ_s
    # was pretrained is named
    assert seed_difference_across(other, "fusion", tuned, "text")["differ"] == ["pretrain.epochs", "pretrain.lr"]
    assert "the files also differ in pretrain.epochs, pretrain.lr (how" in across_files_text(
        other, "fusion", tuned, "text")
    with pytest.raises(ValueError, match=r"\['model\.dropout'\]"):  # text's own setting is not popularity's
        seed_difference_across(other, "fusion", tuned, "popularity")
    keys = ["model.dropout", "pretrain.epochs", "pretrain.lr"]
    assert seed_difference_across(menu, "fusion", tuned, "text")["differ"] == []  # one recipe: nothing named
    with pytest.raises(ValueError, match=r"\['model\.dropout', 'pretrain\.epochs', 'pretrain\.lr'\]"):
        seed_difference_across(other, "fusion", menu, "fusion")  # two θ_s: not silently
    with pytest.raises(ValueError, match=r"\['model\.dropout'\]"):  # popularity shares the model section
        seed_difference_across(other, "fusion", menu, "popularity")
    asked = seed_difference_across(other, "fusion", menu, "fusion", differ=("pretrain.", "model.dropout"))
    assert asked["differ"] == keys and asked["diff"] == pytest.approx(0.0)


def test_the_pretrainings_effect_is_read_only_where_the_fine_tuning_is_alike():
    """Fusion from the θ_s pretrained with the searched recipe against fusion from the menu's θ_s: read as
    the pretraining's effect against the run that fine-tuned with the same dropout (set as
    ``transfer.dropout`` there, as θ_s's ``model.dropout`` here), refused against the one that did not."""
    from xdtutor.readings import across_files_text, theta_s_effect_text

    new, alike, other = (Results.load(ROOT / "results" / f"kitchen_to_food_{n}.json")
                         for n in ("source_tuned", "fusion_dropout", "fusion_tuned"))
    text = theta_s_effect_text(new, alike)
    assert text.startswith("fusion fine-tuned alike") and text.endswith(
        across_files_text(new, "fusion", alike, "fusion", differ=("pretrain.", "model.dropout")))
    assert theta_s_effect_text(new, other) == ("not read as the pretraining's effect: the fine-tuning differs "
                                               "too (θ_t's dropout)")


def test_files_of_different_encoder_weights_are_not_compared():
    """Two files whose item texts were embedded by different weights (an fp16 copy of the encoder, or
    another precision) are not compared, although their encoder has the same name; a file of before the
    weights were recorded is compared on what it records."""
    from xdtutor.results import ENCODER_KEYS, check_comparable

    conv = Results.load(ROOT / "results" / "kitchen_to_food_converged.json")
    weights = {"encoder_sha256": "a" * 64, "encoder_precision": "fp32"}
    a, b = (Results(conv.config, rows=conv.rows, info={**conv.info, **weights}) for _ in range(2))
    check_comparable(a, b)
    old = Results(conv.config, rows=conv.rows, info={k: v for k, v in conv.info.items() if k not in ENCODER_KEYS})
    check_comparable(a, old)  # a file of before the record
    for key, other in (("encoder_sha256", "b" * 64), ("encoder_precision", "bf16")):
        b.info = {**a.info, key: other}
        with pytest.raises(ValueError, match=rf"\['{key}'\]"):
            check_comparable(a, b)


def test_the_width_reference_reproduces_the_searchs_first_trial_to_the_last_digit():
    """Chapter 7.1 compares results/scientific_width.json with results/scientific_width_reference.json, which
    ran in a second GPU call on another machine of the same image. The claim that the two machines train
    alike rests on this: the reference's seed-1 text model is the width search's first trial (the
    experiment's values, trained with seed 1 on the first machine), and their validation scores agree
    exactly."""
    from xdtutor.tune import Search

    ref = json.loads((ROOT / "results" / "scientific_width_reference.json").read_text(encoding="utf-8"))
    (seed1,) = [r for r in ref["runs"] if r["method"] == "text" and r["seed"] == 1]
    found = Search.load(ROOT / "results" / "tune_scientific_text_width.json")
    assert found.info["experiment_config"]["seeds"] == [1] and found.experiment_values["number"] == 0
    assert found.experiment_values["params"]["model.hidden"] == ref["config"]["model"]["hidden"]
    assert seed1["valid"]["ndcg@10"] == found.experiment_values["value"]

