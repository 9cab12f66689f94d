"""The command line: help everywhere, clear errors for bad input."""

from __future__ import annotations

import pytest

from prognos.cli import build_parser, main

COMMANDS = [
    ["stack"],
    ["stack", "up"],
    ["stack", "down"],
    ["stack", "status"],
    ["cloud"],
    ["cloud", "ingest"],
    ["edge"],
    ["edge", "simulate"],
    ["dashboard"],
    ["demo"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: prognos " + " ".join(command))
    assert len(out.splitlines()) > 3


def test_every_subcommand_is_listed() -> None:
    help_text = build_parser().format_help()
    for name in ("stack", "cloud", "edge", "dashboard", "demo", "models"):
        assert name in help_text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["edge", "simulate", "--vehicles", "0"], "0 is not positive"),
        (["edge", "simulate", "--vehicles", "many"], "'many' is not a whole number"),
        (["stack", "sideways"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_fleet_name_is_a_config_error(capsys: pytest.CaptureFixture[str], tmp_path: object) -> None:
    assert main(["edge", "simulate", "--fleet", "a/b"]) == 2
    assert "fleet name 'a/b'" in capsys.readouterr().err
