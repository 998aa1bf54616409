"""CLI conventions (#12): every subcommand's --help shows each option's default, has help text for
every option and ends with examples; exit statuses 0 / 1 / 2; -q/-v accepted after the subcommand."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from disco.cli import EXIT_FAILED, EXIT_USAGE, build_parser, main
from disco.cli._help import shows_default


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


COMMANDS = sorted(_subparsers(build_parser()))


def test_every_module_registers_a_command():
    assert {"run", "train", "compile", "submit", "info"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_text_defaults_and_examples(command, capsys):
    sub = _subparsers(build_parser())[command]
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help, f"disco {command}: {name} has no help text"
        assert shows_default(action), (
            f"disco {command}: {name} defaults to None and its help does not say what that means"
        )
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    # The rendered help shows every non-None default of a valued option (argparse wraps long lines,
    # also at hyphens, hence the comparison without whitespace).
    flat = "".join(text.split())
    for action in sub._actions:
        if action.option_strings and action.nargs != 0 and action.default not in (None, argparse.SUPPRESS):
            shown = "".join(str(action.default).split())
            assert shown in flat, f"disco {command} --help does not show {action.default!r}"
    examples = text.rstrip().split("examples:\n")
    assert len(examples) == 2, f"disco {command} --help does not end with examples"
    lines = [line.strip() for line in examples[1].splitlines() if line.strip()]
    assert 1 <= len(lines) <= 3
    assert all(line.startswith(("disco ", "make ")) for line in lines), lines
    assert any(command in line for line in lines), f"no example of disco {command}: {lines}"


def test_main_help_documents_exit_statuses(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "0 ok, 1 a step or run failed" in " ".join(text.split())


def test_verbosity_is_accepted_after_the_subcommand(openmic_sample, capsys):
    assert main(["info", str(openmic_sample), "--partial", "-q"]) == 0
    assert main(["-v", "info", str(openmic_sample), "--partial"]) == 0
    with pytest.raises(SystemExit) as done:
        main(["info", str(openmic_sample), "-q", "-v"])
    assert done.value.code == EXIT_USAGE


def test_usage_and_input_errors_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main(["train"])  # FEATURES and --out missing
    assert done.value.code == EXIT_USAGE
    capsys.readouterr()
    missing = tmp_path / "nowhere"
    assert main(["info", str(missing)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert str(missing) in err and err.count("\n") == 1


@pytest.mark.slow
def test_a_failed_run_exits_1(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "disco", "run", "--data", str(empty), "--output-dir", str(tmp_path / "run")]
        + ["--epochs", "1", "--no-cache"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == EXIT_FAILED, result.stderr[-2000:]
    last = result.stderr.splitlines()[-1]
    # The step's own typed error, as the step recorded it, and where the full log is.
    assert "DatasetError: " in last and str(empty) in last and "pipeline.log" in last, last


def test_a_reader_closing_the_pipe_ends_the_output_without_a_traceback(shared_dir, monkeypatch, capsys):
    """`disco info DATA | head` closed stdout under the command: a BrokenPipeError traceback. Here
    stdout is a pipe whose reader has already gone, so every write fails as it would then."""
    import os
    import sys

    from disco.cli import main

    read, write = os.pipe()
    os.close(read)
    with capsys.disabled(), os.fdopen(write, "w") as closed:
        monkeypatch.setattr(sys, "stdout", closed)
        rc = main(["info", str(shared_dir / "data" / "audioset-music20-dev")])
        monkeypatch.undo()
        assert rc == 141
