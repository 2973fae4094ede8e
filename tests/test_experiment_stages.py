"""Stage caching: config hashes, input tokens, --only / --force, resume after a crash."""

from __future__ import annotations

import json

import pytest

from fairvlm.errors import ConfigError
from fairvlm.experiment.stages import DONE_FILE, Stage, StageGraph, config_hash


class Recorder:
    """Actions that write a file and count their calls; ``fail`` makes one raise once."""

    def __init__(self):
        self.calls: list[tuple[str, bool]] = []
        self.fail: set[str] = set()

    def action(self, ctx):
        self.calls.append((ctx.stage.id, ctx.resume))
        (ctx.folder / "partial.txt").write_text("started")
        if ctx.stage.id in self.fail:
            self.fail.discard(ctx.stage.id)
            raise RuntimeError("killed")
        inputs = {k: (v / "out.txt").read_text() for k, v in ctx.inputs.items()}
        (ctx.folder / "out.txt").write_text(json.dumps([ctx.stage.config, inputs]))


def chain(rec: Recorder, b_value: int = 1) -> list[Stage]:
    return [
        Stage("s/data", "data", "s/data", {"n": 1}, rec.action),
        Stage("s/base", "base", "s/base", {"steps": b_value}, rec.action, ["s/data"]),
        Stage("s/audit/base", "audit", "s/audit/base", {"k": 1}, rec.action, ["s/base"]),
        Stage("s/train/lora", "train", "s/train/lora", {"lr": 1}, rec.action, ["s/base"]),
        Stage(
            "s/audit/lora",
            "audit",
            "s/audit/lora",
            {"k": 1},
            rec.action,
            ["s/base", "s/train/lora"],
        ),
    ]


def ids(calls):
    return [c[0] for c in calls]


def test_hash_is_stable_and_config_sensitive():
    assert config_hash("train", {"a": 1, "b": [1, 2]}) == config_hash(
        "train", {"b": [1, 2], "a": 1}
    )
    assert config_hash("train", {"a": 1}) != config_hash("train", {"a": 2})
    assert config_hash("train", {"a": 1}) != config_hash("audit", {"a": 1})


def test_second_run_skips_everything(tmp_path):
    rec = Recorder()
    results = StageGraph(tmp_path, chain(rec)).run()
    assert [r.status for r in results] == ["ran"] * 5
    assert len(rec.calls) == 5
    marker = json.loads((tmp_path / "s/base" / DONE_FILE).read_text())
    rec2 = Recorder()
    results = StageGraph(tmp_path, chain(rec2)).run()
    assert rec2.calls == []
    assert [r.status for r in results] == ["cached"] * 5
    assert json.loads((tmp_path / "s/base" / DONE_FILE).read_text())["token"] == marker["token"]


def test_changed_config_reruns_stage_and_downstream_only(tmp_path):
    StageGraph(tmp_path, chain(Recorder())).run()
    rec = Recorder()
    StageGraph(tmp_path, chain(rec, b_value=2)).run()
    assert ids(rec.calls) == ["s/base", "s/audit/base", "s/train/lora", "s/audit/lora"]
    out = json.loads((tmp_path / "s/base/out.txt").read_text())
    assert out[0] == {"steps": 2}


def test_force_reruns_downstream_and_only_limits(tmp_path):
    StageGraph(tmp_path, chain(Recorder())).run()
    rec = Recorder()
    StageGraph(tmp_path, chain(rec)).run(force=["s/train/lora"])
    assert ids(rec.calls) == ["s/train/lora", "s/audit/lora"]
    rec = Recorder()
    StageGraph(tmp_path, chain(rec)).run(only=["audit"], force=["audit"])
    assert ids(rec.calls) == ["s/audit/base", "s/audit/lora"]


def test_only_needs_finished_inputs(tmp_path):
    graph = StageGraph(tmp_path, chain(Recorder()))
    with pytest.raises(ConfigError, match="needs 's/base'"):
        graph.plan(only=["s/audit/base"])
    with pytest.raises(ConfigError, match="matches no stage"):
        graph.plan(only=["nonexistent"])


def test_killed_stage_resumes_and_finished_ones_are_kept(tmp_path):
    rec = Recorder()
    rec.fail = {"s/train/lora"}
    with pytest.raises(RuntimeError):
        StageGraph(tmp_path, chain(rec)).run()
    assert ids(rec.calls) == ["s/data", "s/base", "s/audit/base", "s/train/lora"]
    assert not (tmp_path / "s/train/lora" / DONE_FILE).exists()
    rec2 = Recorder()
    results = StageGraph(tmp_path, chain(rec2)).run()
    assert rec2.calls == [("s/train/lora", True), ("s/audit/lora", False)]
    assert [r.status for r in results] == ["cached"] * 3 + ["ran"] * 2


def test_partial_output_of_another_config_is_wiped(tmp_path):
    rec = Recorder()
    rec.fail = {"s/base"}
    with pytest.raises(RuntimeError):
        StageGraph(tmp_path, chain(rec)).run()
    (tmp_path / "s/base/stale.bin").write_text("x")
    rec2 = Recorder()
    StageGraph(tmp_path, chain(rec2, b_value=3)).run()
    assert rec2.calls[0] == ("s/base", False)
    assert not (tmp_path / "s/base/stale.bin").exists()


def test_pattern_matching():
    st = Stage("clinical/train/lora", "train", "x", {}, lambda ctx: None)
    assert st.matches("clinical") and st.matches("train") and st.matches("lora")
    assert st.matches("clinical/*/lora") and st.matches("clinical/train")
    assert not st.matches("social") and not st.matches("lor")


# -- parallel runs (worker processes) ------------------------------------------------------
def timed_action(ctx):
    """A picklable action for worker processes: prints a line (captured to stage.log),
    sleeps ``sleep`` seconds, records when it ran and what its inputs wrote, and raises
    when its config says ``fail`` and no ``ok`` file was put in the run folder. With
    ``meet: OTHER`` it waits (up to 60 s) until stage OTHER has started and records
    whether it did: two stages that meet ran at the same time, however loaded the
    machine (a sleep alone does not prove it there)."""
    import time

    print(f"hello from {ctx.stage.id}")
    start = time.time()
    (ctx.run_dir / f"started-{ctx.stage.id.replace('/', '-')}").write_text("")
    if ctx.stage.config.get("fail") and not (ctx.run_dir / "ok").exists():
        raise RuntimeError(f"boom in {ctx.stage.id}")
    met = None
    if other := ctx.stage.config.get("meet"):
        flag = ctx.run_dir / f"started-{other.replace('/', '-')}"
        deadline = time.time() + 60
        while not flag.exists() and time.time() < deadline:
            time.sleep(0.05)
        met = flag.exists()
    time.sleep(ctx.stage.config.get("sleep", 0))
    inputs = {k: json.loads((v / "out.json").read_text())["id"] for k, v in ctx.inputs.items()}
    out = {"id": ctx.stage.id, "inputs": inputs, "start": start, "end": time.time(), "met": met}
    (ctx.folder / "out.json").write_text(json.dumps(out))


def forked(fail: bool = False) -> list[Stage]:
    """Two studies: a's base feeds two independent stages; b is independent of a."""
    return [
        Stage("a/data", "data", "a/data", {}, timed_action),
        Stage("a/base", "base", "a/base", {}, timed_action, ["a/data"]),
        Stage("a/x", "train", "a/x", {"meet": "a/y"}, timed_action, ["a/base"]),
        Stage("a/y", "train", "a/y", {"meet": "a/x", "fail": fail}, timed_action, ["a/base"]),
        Stage("a/audit", "audit", "a/audit", {}, timed_action, ["a/x", "a/y"]),
        Stage("b/data", "data", "b/data", {"sleep": 0.5}, timed_action),
    ]


def _out(root, sid):
    return json.loads((root / sid / "out.json").read_text())


def test_parallel_run_respects_inputs_and_overlaps_independent_stages(tmp_path):
    from fairvlm.experiment.parallel import run_parallel

    events = []
    graph = StageGraph(tmp_path, forked(), capture=True)
    results = run_parallel(graph, 2, progress=lambda i, n, st, status, s: events.append(
        (st.id, status)))  # fmt: skip
    assert [r.stage.id for r in results] == [s.id for s in forked()]
    assert all(r.status == "ran" for r in results)
    for stage in forked():
        out = _out(tmp_path, stage.id)
        assert sorted(out["inputs"]) == sorted(stage.deps)
        for dep in stage.deps:  # an input had finished before the stage started
            assert _out(tmp_path, dep)["end"] <= out["start"]
        assert f"hello from {stage.id}" in (tmp_path / stage.id / "stage.log").read_text()
    x, y = _out(tmp_path, "a/x"), _out(tmp_path, "a/y")
    assert x["met"] and y["met"]  # each saw the other start before it ended: in parallel
    assert [e for e in events if e[1] == "done"] and len(events) == 2 * len(forked())

    again = run_parallel(StageGraph(tmp_path, forked()), 2)
    assert [r.status for r in again] == ["cached"] * len(forked())


def test_parallel_failure_names_the_stage_and_keeps_finished_ones(tmp_path):
    from fairvlm.experiment.parallel import StageFailed, run_parallel

    with pytest.raises(StageFailed, match=r"'a/y' failed: RuntimeError: boom in a/y"):
        run_parallel(StageGraph(tmp_path, forked(fail=True), capture=True), 2)
    assert (tmp_path / "a/x" / DONE_FILE).exists()  # finished beside the failure
    assert not (tmp_path / "a/y" / DONE_FILE).exists()
    assert not (tmp_path / "a/audit").exists()  # never started
    assert "hello from a/y" in (tmp_path / "a/y/stage.log").read_text()

    (tmp_path / "ok").write_text("")
    resumed = run_parallel(StageGraph(tmp_path, forked(fail=True)), 2)
    status = {r.stage.id: r.status for r in resumed}
    assert status == {"a/data": "cached", "a/base": "cached", "a/x": "cached",
                      "a/y": "ran", "a/audit": "ran", "b/data": "cached"}  # fmt: skip


def test_captured_output_goes_to_the_stage_log(tmp_path, capfd):
    graph = StageGraph(tmp_path, forked()[:1], capture=True)
    graph.run()
    assert "hello from a/data" in (tmp_path / "a/data/stage.log").read_text()
    assert "hello from" not in capfd.readouterr().out
