"""fairvlm datasets as lmms-eval tasks, lmms-eval sample logs as fairvlm audit folders.

The fast tests write sample logs in the layout lmms-eval 0.7's ``--log_samples`` writes
(``<date>_samples_<task>.jsonl``: doc_id, target, input, filtered_resps, the option
scores as ``"(ll, is_greedy)"`` strings; ``<date>_results.json``) from fairvlm's own audit of the same model and data, so that
the import must give back that audit's records and metrics. The slow tests run the
installed lmms-eval itself.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from audit_support import audit_samples
from PIL import Image

from fairvlm.audit.runner import run_audit
from fairvlm.cli import main
from fairvlm.data import save_dataset
from fairvlm.interop.lmms_eval_export import EXPORT_FILE, export_lmms_eval
from fairvlm.interop.lmms_eval_import import import_lmms_eval

TASKS = ("vqa", "report", "probe", "describe", "concept")
DATE = "20261201_120000"


class _Loader(yaml.SafeLoader):
    """lmms-eval's reading of ``!function utils.NAME`` (kept as the name here)."""


_Loader.add_constructor(
    "!function", lambda loader, node: ("function", loader.construct_scalar(node))
)


@pytest.fixture(scope="module")
def lmms_eval_installed():
    """First in the slow tests' arguments: skip before the module's fixtures run."""
    return pytest.importorskip(
        "lmms_eval", reason="lmms-eval is not installed (pip install 'fairvlm[lmms]')"
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("lmms")
    return save_dataset({"test": audit_samples(4, tasks=TASKS)}, root / "bench")


@pytest.fixture(scope="module")
def native(data, tiny_llava, tmp_path_factory):
    """fairvlm's own audit, scoring closed answers as lmms-eval's multiple choice does."""
    out = tmp_path_factory.mktemp("native") / "audit"
    cfg = {"closed_mode": "score", "max_new_tokens": 4, "progress": False}
    return run_audit(str(tiny_llava), str(data), cfg, out)


def _load_utils(folder: Path):
    spec = importlib.util.spec_from_file_location("exported_utils", folder / "utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_logs(native: Path, root: Path, model: str, *, name: str = "bench") -> list[Path]:
    """The native audit's records as lmms-eval 0.7 logs them (strings, doc left out)."""
    records = pd.read_parquet(native / "records.parquet")
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for task, df in records.groupby("task", sort=False):
        path = root / f"{DATE}_samples_fairvlm_{name}_{task}.jsonl"
        with path.open("w") as fh:
            for i, r in enumerate(df.itertuples()):
                if r.option_logprob is not None:
                    resps = [f"({float(v)!r}, False)" for v in r.option_logprob]  # as 0.7.3 writes
                else:
                    resps = f" {r.output}"  # lmms-eval keeps the decoded text unstripped
                target = r.target if isinstance(r.target, str) else ""
                line = {"doc_id": i, "target": target, "input": r.prompt}
                fh.write(json.dumps({**line, "filtered_resps": resps, "doc_hash": "x"}) + "\n")
        paths.append(path)
    results = {
        "config": {"model": "llava_hf", "model_args": f"pretrained={model},device=cpu"},
        "lmms_eval_version": "0.7.3",
        "date": DATE,
    }
    (root / f"{DATE}_results.json").write_text(json.dumps(results))
    return paths


def test_export_writes_tasks_whose_utils_give_fairvlm_prompts(data, tmp_path):
    out = tmp_path / "tasks"
    manifest = export_lmms_eval(data, out, tasks=["vqa", "probe", "report"])
    assert list(manifest["tasks"]) == ["vqa", "probe", "report"]
    assert (out / EXPORT_FILE).is_file() and (out / "utils.py").is_file()
    vqa = yaml.load((out / "fairvlm_bench_vqa.yaml").read_text(), Loader=_Loader)
    assert vqa["task"] == "fairvlm_bench_vqa"
    assert vqa["output_type"] == "multiple_choice" and vqa["target_delimiter"] == ""
    assert vqa["doc_to_choice"] == ("function", "utils.doc_to_choice")
    assert vqa["dataset_path"] == "json" and vqa["test_split"] == "test"
    files = vqa["dataset_kwargs"]["data_files"]["test"]
    assert Path(files) == (out / "fairvlm_bench_vqa.jsonl").resolve()
    report = yaml.load((out / "fairvlm_bench_report.yaml").read_text(), Loader=_Loader)
    assert report["output_type"] == "generate_until"
    assert report["generation_kwargs"] == {
        "max_new_tokens": 48,
        "do_sample": False,
        "temperature": 0,
    }

    utils = _load_utils(out)
    assert "lmms_eval" not in sys.modules and "fairvlm" not in utils.__dict__
    samples = {s.id: s for s in audit_samples(4, tasks=TASKS)}
    docs = [json.loads(line) for line in Path(files).read_text().splitlines()]
    assert [d["sample_id"] for d in docs] == ["vqa0", "vqa1", "vqa2", "vqa3"]
    doc, sample = docs[1], samples["vqa1"]
    assert utils.doc_to_text(doc) == sample.prompt == "What is the diagnosis?"
    assert utils.doc_to_target(doc) == "malignant"
    assert utils.doc_to_choice(doc) == ["benign", "malignant"]
    (image,) = utils.doc_to_visual(doc)
    assert list(image.getdata()) == list(sample.image.convert("RGB").getdata())
    assert utils.process_results(doc, [(-3.0, False), (-1.0, True)]) == {"option_accuracy": 1.0}
    as_logged = ["(-3.0, False)", "(-1.0, True)"]  # what lmms-eval 0.7 passes
    assert utils.process_results(doc, as_logged) == {"option_accuracy": 1.0}
    probe = json.loads((out / "fairvlm_bench_probe.jsonl").read_text().splitlines()[0])
    assert utils.doc_to_choice(probe) == ["yes", "no"] and utils.doc_to_target(probe) == "yes"
    assert utils.process_results(probe, [(-1.0, True), (-1.0, False)]) == {"p_yes": 0.5}
    assert isinstance(Image.open(out / probe["image"]), Image.Image)


def test_export_refuses_bad_names_and_tasks(data, tmp_path, capsys):
    assert main(["export", "lmms-eval", str(data), str(tmp_path / "o"), "--name", "a b"]) == 2
    assert "--name='a b' is not valid" in capsys.readouterr().err
    assert main(["export", "lmms-eval", str(data), str(tmp_path / "o"), "--tasks", "vqa,x"]) == 2
    assert "--tasks='vqa,x' is not valid" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_import_round_trip_gives_the_native_records_and_metrics(native, data, tiny_llava, tmp_path):
    logs = _write_logs(native, tmp_path / "logs", str(tiny_llava))
    out = tmp_path / "imported"
    argv = ["import-records", "lmms-eval", *map(str, logs), "--data", str(data)]
    assert main([*argv, "--out", str(out)]) == 0
    ours, theirs = (
        pd.read_parquet(native / "records.parquet"),
        pd.read_parquet(out / "records.parquet"),
    )
    assert list(theirs.columns) == list(ours.columns)
    same = ["sample_id", "task", "prompt", "output", "target", "options", "pred", "p_yes"]
    assert theirs[same].astype(str).equals(ours[same].astype(str))
    assert theirs["option_logprob"].astype(str).equals(ours["option_logprob"].astype(str))
    assert theirs["attr.sex"].tolist() == ours["attr.sex"].tolist()
    native_metrics = json.loads((native / "metrics.json").read_text())
    assert json.loads((out / "metrics.json").read_text()) == native_metrics
    config = yaml.safe_load((out / "config.yaml").read_text())
    native_config = yaml.safe_load((native / "config.yaml").read_text())
    assert config["identity"]["data_fingerprint"] == native_config["identity"]["data_fingerprint"]
    assert config["identity"]["model_fingerprint"] == native_config["identity"]["model_fingerprint"]
    assert config["lmms_eval"]["vqa"]["version"] == "0.7.3"
    assert config["lmms_eval"]["vqa"]["task"] == "fairvlm_bench_vqa"
    assert config["lmms_eval"]["vqa"]["model_args"].startswith("pretrained=")
    # fairvlm compare pairs it with the native audit, sample by sample
    assert (
        main(["compare", str(native), str(out), "--out", str(tmp_path / "cmp"), "--n-boot", "20"])
        == 0
    )
    doc = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert doc["comparisons"]["imported"]["vqa"]["accuracy"]["overall"]["diff"] == 0.0


@pytest.fixture(scope="module")
def logs(native, tiny_llava, tmp_path_factory):
    return _write_logs(native, tmp_path_factory.mktemp("logs"), str(tiny_llava))


def _import_error(capsys, argv: list[str], *needles: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("fairvlm import-records: error: "), err
    for needle in needles:
        assert needle in err, err
    return err


def _log(logs: list[Path], task: str) -> Path:
    return next(p for p in logs if p.name.endswith(f"_{task}.jsonl"))


def _edit(src: Path, dst_dir: Path, edit) -> Path:
    dst_dir.mkdir(exist_ok=True)
    lines = [json.loads(line) for line in src.read_text().splitlines()]
    dst = dst_dir / src.name
    dst.write_text("".join(json.dumps(line) + "\n" for line in edit(lines)))
    return dst


def _argv(data, out, *paths) -> list[str]:
    return ["import-records", "lmms-eval", *map(str, paths), "--data", str(data), "--out", str(out)]


def test_import_unknown_doc_id(logs, data, tmp_path, capsys):
    bad = _edit(_log(logs, "vqa"), tmp_path / "l", lambda ls: [*ls, {**ls[0], "doc_id": 7}])
    _import_error(capsys, _argv(data, tmp_path / "o", bad), str(bad), "unknown doc_id 7", "0-3")


def test_import_missing_samples(logs, data, tmp_path, capsys):
    bad = _edit(_log(logs, "report"), tmp_path / "l", lambda ls: ls[:2])
    _import_error(
        capsys, _argv(data, tmp_path / "o", bad), "2 of the 4 samples", "doc ids 2, 3", "--limit"
    )


def test_import_task_not_in_the_data(logs, tmp_path, capsys):
    only_vqa = save_dataset({"test": audit_samples(4, tasks=["vqa"])}, tmp_path / "bench")
    _import_error(
        capsys, _argv(only_vqa, tmp_path / "o", _log(logs, "probe")), "task 'probe'", "no samples"
    )


def test_import_task_that_is_not_a_fairvlm_task(logs, data, tmp_path, capsys):
    bad = tmp_path / f"{DATE}_samples_mmmu_val.jsonl"
    shutil.copyfile(_log(logs, "vqa"), bad)
    _import_error(
        capsys, _argv(data, tmp_path / "o", bad), "'mmmu_val' is not a fairvlm export task"
    )


def test_import_logs_of_other_data(logs, data, tmp_path, capsys):
    swapped = _edit(
        _log(logs, "vqa"), tmp_path / "l", lambda ls: [{**ls[0], "target": "x"}, *ls[1:]]
    )
    _import_error(capsys, _argv(data, tmp_path / "o", swapped), "doc_id 0", "target 'x'", "'vqa0'")
    reworded = _edit(
        _log(logs, "report"), tmp_path / "r", lambda ls: [*ls[:3], {**ls[3], "input": "Hi?"}]
    )
    _import_error(capsys, _argv(data, tmp_path / "o", reworded), "doc_id 3", "prompt 'Hi?'")
    other = tmp_path / "other"
    (other).mkdir()
    shutil.copyfile(_log(logs, "vqa"), other / _log(logs, "vqa").name)
    config = {"fairvlm_bench_vqa": {"metadata": {"fairvlm": {"fingerprint": "0" * 64}}}}
    (other / f"{DATE}_results.json").write_text(json.dumps({"configs": config}))
    _import_error(capsys, _argv(data, tmp_path / "o", other / _log(logs, "vqa").name), "other data")


def test_import_wrong_number_of_options(logs, data, tmp_path, capsys):
    cut = _edit(
        _log(logs, "vqa"),
        tmp_path / "l",
        lambda ls: [{**ls[0], "filtered_resps": [["-1.0", "False"]]}, *ls[1:]],
    )
    _import_error(capsys, _argv(data, tmp_path / "o", cut), "1 responses for 2 options")


@pytest.mark.parametrize(
    ("name", "text", "needle"),
    [
        ("results.json", "{}", "is not an lmms-eval sample log"),
        (f"{DATE}_samples_fairvlm_bench_vqa.jsonl", "not json\n", "line 1: not JSON"),
        (f"{DATE}_samples_fairvlm_bench_vqa.jsonl", '{"a": 1}\n', "no doc_id and filtered_resps"),
    ],
)
def test_import_a_file_that_is_not_a_sample_log(name, text, needle, data, tmp_path, capsys):
    bad = tmp_path / name
    bad.write_text(text)
    _import_error(capsys, _argv(data, tmp_path / "o", bad), needle)


@pytest.mark.slow
def test_round_trip_on_the_installed_lmms_eval(
    lmms_eval_installed, native, data, tiny_llava, tmp_path
):
    """Export, run lmms-eval's llava_hf on the tiny LLaVA (CPU), import, compare with the
    native audit: the same greedy outputs and the same metrics.

    Open tasks only: lmms-eval 0.7.3's llava_hf cannot score options under transformers
    5 (chat mode takes only generation tasks; simple mode renders no image token with a
    typed-content chat template, then tokenizes the prompt without its image), and
    returns the mean loss rather than a log-likelihood (docs/scale.md)."""
    tasks = tmp_path / "tasks"
    export_lmms_eval(data, tasks, tasks=["report", "describe"], max_new_tokens=4)
    cmd = [
        sys.executable, "-m", "lmms_eval", "--model", "llava_hf",
        "--model_args", f"pretrained={tiny_llava},device=cpu,device_map=cpu,dtype=float32",
        "--include_path", str(tasks), "--tasks", "fairvlm_bench_report,fairvlm_bench_describe",
        "--log_samples", "--output_path", str(tmp_path / "logs"),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    found = sorted((tmp_path / "logs").rglob("*_samples_*.jsonl"))
    assert len(found) == 2
    out = import_lmms_eval(found, data, tmp_path / "imported")
    ours = pd.read_parquet(native / "records.parquet").set_index(["task", "sample_id"])
    theirs = pd.read_parquet(out / "records.parquet").set_index(["task", "sample_id"])
    assert len(theirs) == 8
    assert theirs["output"].equals(ours.loc[theirs.index, "output"])
    assert theirs["prompt"].equals(ours.loc[theirs.index, "prompt"])
    native_tasks = json.loads((native / "metrics.json").read_text())["tasks"]
    imported = json.loads((out / "metrics.json").read_text())
    assert imported["tasks"] == {t: native_tasks[t] for t in ("report", "describe")}
    provenance = yaml.safe_load((out / "config.yaml").read_text())["lmms_eval"]["report"]
    assert provenance["model"] == "llava_hf" and provenance["installed_version"]
    assert provenance["model_args"].startswith(f"pretrained={tiny_llava},")
    assert imported["model"] == str(tiny_llava)


@pytest.mark.slow
def test_import_of_multiple_choice_logs_written_by_the_installed_lmms_eval(
    lmms_eval_installed, data, tmp_path
):
    """lmms-eval's own writer for vqa / concept / probe logs, through its ``dummy`` model
    (every option scores 0.0), the one CPU model class whose option scoring runs."""
    tasks = tmp_path / "tasks"
    export_lmms_eval(data, tasks, tasks=["vqa", "probe", "concept"])
    names = "fairvlm_bench_vqa,fairvlm_bench_probe,fairvlm_bench_concept"
    cmd = [
        sys.executable, "-m", "lmms_eval", "--model", "dummy", "--include_path", str(tasks),
        "--tasks", names, "--log_samples", "--output_path", str(tmp_path / "logs"),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    found = sorted((tmp_path / "logs").rglob("*_samples_*.jsonl"))
    assert len(found) == 3
    out = import_lmms_eval(found, data, tmp_path / "imported")
    records = pd.read_parquet(out / "records.parquet")
    assert records["task"].tolist() == ["vqa"] * 4 + ["probe"] * 4 + ["concept"] * 4
    vqa = records[records["task"] == "vqa"]
    assert vqa["options"].map(list).tolist() == [["benign", "malignant"]] * 4
    assert vqa["option_logprob"].map(list).tolist() == [[0.0, 0.0]] * 4
    assert vqa["pred"].tolist() == ["benign"] * 4  # ties: the first option, as fairvlm's
    assert records.loc[records["task"] == "probe", "p_yes"].tolist() == [0.5] * 4
    metrics = json.loads((out / "metrics.json").read_text())["tasks"]
    assert metrics["vqa"]["metrics"]["accuracy"]["overall"] == 0.5
