"""The command line under bad flags, parameterised over every command: each error comes from the
parser or from the checks `python -m models` runs before the command (nothing is trained), names
the flag, and leaves nothing behind; files are written whole or not at all."""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import pytest

import models.__main__
from models import cli
from models.plots import save_figure

ALL = sorted(models.__main__.COMMANDS)
READS_DATA_DIR = ["bnn", "gp", "iwae", "sbn", "ssl_vae", "vae"]  # the others' data come with pip packages


def _main(*argv):
    return models.__main__.main(list(argv))


def test_the_data_dir_split_covers_every_command():
    assert set(READS_DATA_DIR) <= set(ALL)


@pytest.mark.parametrize("argv", [
    ["bnn", "--epochs", "0"], ["bnn", "--splits", "0"], ["gp", "--epochs", "-1"], ["gp", "--splits", "0"],
    ["lda", "--method", "lntm", "--epochs", "0"], ["lda", "--topics", "0"], ["iwae", "--epochs", "0"],
    ["sbn", "--epochs", "-1"], ["sbn", "--n-particles", "0"], ["vae", "--epochs", "0"],
    ["vae", "--n-importance", "0"], ["blr", "--chains", "0"], ["gaussian", "--samples", "0"],
    ["pmf", "--rank", "0"], ["bnn", "--epochs", "two"],
], ids=lambda argv: " ".join(argv))
def test_counts_below_one_are_usage_errors(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _main(*argv, "--out", str(tmp_path / "out"))
    assert exit_info.value.code == 2 and "positive integer" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ALL)
def test_data_dir_is_honoured_or_refused(command, tmp_path, capsys):
    missing = str(tmp_path / "nonexistent")
    if command in READS_DATA_DIR:
        with pytest.raises(FileNotFoundError, match="--data-dir .*nonexistent"):
            _main(command, "--data-dir", missing, "--out", str(tmp_path / "out"))
    else:
        with pytest.raises(SystemExit):
            _main(command, "--data-dir", missing, "--out", str(tmp_path / "out"))
        assert "unrecognized arguments: --data-dir" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ALL)
def test_out_is_checked_before_any_computation(command, tmp_path):
    used = tmp_path / "used"
    used.mkdir()
    (used / "metrics.json").write_text("{}")
    with pytest.raises(FileExistsError, match="already holds files.*--overwrite"):
        _main(command, "--out", str(used))
    assert (used / "metrics.json").read_text() == "{}"
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    with pytest.raises(FileExistsError, match="cannot be created|not a directory"):
        _main(command, "--out", str(a_file / "sub"))
    with pytest.raises(FileExistsError, match="not a directory"):
        _main(command, "--out", str(a_file))


def test_overwrite_and_resume_accept_a_used_out(tmp_path):
    (tmp_path / "old.txt").write_text("")
    for flags in ({"overwrite": True}, {"resume": True}):
        args = argparse.Namespace(out=str(tmp_path), **flags)
        assert cli.prepare_output(args) == tmp_path
    assert cli.prepare_output(argparse.Namespace(out=str(tmp_path / "new"))).is_dir()


@pytest.mark.parametrize("argv, match", [
    (["blr", "--leapfrogs", "5"], "--leapfrogs is not used by --method nuts"),
    (["gaussian", "--method", "chees", "--leapfrogs", "5"], "--leapfrogs is not used by --method chees"),
    (["bnn", "--method", "sgvb", "--n-chains", "2"], "--n-chains is not used by --method sgvb"),
    (["lda", "--steps", "3"], "--steps is not used by --method svi"),
    (["lda", "--method", "lntm", "--steps", "3"], "--steps is not used by --method lntm"),
    (["gp", "--method", "exact", "--inducing", "5"], "--inducing is not used"),
    (["bnn", "--method", "sghmc", "--resume"], "--resume is not used by --method sghmc"),
    (["vae", "--baseline", "nvil"], "--baseline is not used by --latent gaussian"),
    (["vae", "--latent", "bernoulli", "--temperature", "0.3"],
     "--temperature is not used by --latent bernoulli"),
    (["vae", "--n-flows", "3"], "--n-flows is not used by --flow none"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_flags_a_method_does_not_use_are_refused(argv, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        _main(*argv, "--out", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["iwae", "sbn", "bnn", "gp", "lda"])
def test_training_commands_take_checkpoint_flags(command):
    parser = argparse.ArgumentParser()
    module = __import__(models.__main__.COMMANDS[command][0], fromlist=["add_arguments"])
    module.add_arguments(parser)
    args = parser.parse_args(["--checkpoint-every", "2", "--resume"])
    options = cli.checkpoint_options(args, "run")
    assert options == {"checkpoint_dir": Path("run") / "checkpoints", "checkpoint_every": 2, "resume": True}
    assert cli.checkpoint_options(parser.parse_args([]), "run") == {}


def _interrupt(*args):
    raise KeyboardInterrupt  # what Ctrl-C raises in the middle of a write


def test_an_interrupted_metrics_write_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    cli.write_metrics(tmp_path, {"epoch": 1})
    monkeypatch.setattr(os, "replace", _interrupt)
    with pytest.raises(KeyboardInterrupt):
        cli.write_metrics(tmp_path, {"epoch": 2, "nan": float("nan")})
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_an_interrupted_figure_save_leaves_no_file(tmp_path, monkeypatch):
    plt = pytest.importorskip("matplotlib.pyplot")
    fig = plt.figure()
    monkeypatch.setattr(os, "replace", _interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_figure(fig, tmp_path / "plot.png")
    plt.close(fig)
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_training_command_keeps_its_checkpoint_and_resumes(tmp_path, monkeypatch):
    """Ctrl-C in epoch 2 of 3 leaves epoch 1's checkpoint and no metrics.json; `--resume` then
    finishes the run from it (that a resumed run equals an uninterrupted one bit for bit is
    `inference.fit`'s test; a second full run here would double this test's compile time)."""
    import inference
    from inference.checkpoint import latest_checkpoint

    def argv(out, *extra):
        return ["iwae", "--data-dir", "", "--dataset", "mnist_5k", "--n-particles", "2", "--epochs", "3",
                "--n-train", "100", "--batch-size", "50", "--n-test", "2", "--n-importance", "2", "--quiet",
                "--checkpoint-every", "1", "--out", str(out), *extra]

    real_fit = inference.fit

    def fit_interrupted_in_epoch_2(*args, **kwargs):
        def callback(epoch, params, state, record):
            if epoch == 2:
                raise KeyboardInterrupt
        return real_fit(*args, **{**kwargs, "callback_fn": callback})

    monkeypatch.setattr(inference, "fit", fit_interrupted_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        _main(*argv(tmp_path / "run"))
    monkeypatch.undo()
    assert latest_checkpoint(tmp_path / "run" / "checkpoints").name == "1"
    assert not (tmp_path / "run" / "metrics.json").exists()
    calls = []

    def fit_recording_resume(*args, **kwargs):
        calls.append(kwargs)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(inference, "fit", fit_recording_resume)
    assert _main(*argv(tmp_path / "run", "--resume")) == 0
    assert calls[0]["resume"] is True and calls[0]["checkpoint_dir"] == tmp_path / "run" / "checkpoints"
    resumed = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # three epochs in the history: the first restored from the checkpoint, two trained after it
    bounds = resumed["train_bound_per_epoch"]
    assert len(bounds) == 3 and all(map(math.isfinite, bounds))
    assert latest_checkpoint(tmp_path / "run" / "checkpoints").name == "3"
