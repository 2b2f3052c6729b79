"""A mistyped subcommand, action or flag gets a "did you mean" (argparse 3.11 gives none)."""

from __future__ import annotations

import pytest

from mixnas.cli import main


@pytest.mark.parametrize("argv, hint", [
    (["serach", "--space", "x"], "did you mean 'search'?"),
    (["space", "chek", "f.yaml"], "did you mean 'check'?"),
    (["study", "rn", "f.yaml"], "did you mean 'run'?"),
    (["bench", "buidl", "f.yaml"], "did you mean 'build'?"),
    (["search", "--space", "x.yaml", "--trails", "5"], "--trails (did you mean '--trials'?)"),
    (["models", "--famly", "strip"], "did you mean '--family'?"),
    (["study", "run", "f.yaml", "--resme"], "did you mean '--resume'?"),
])
def test_mistyped_commands_and_flags_get_a_suggestion(capsys, argv, hint):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert hint in err and "Traceback" not in err


def test_nothing_close_gets_no_suggestion(capsys):
    with pytest.raises(SystemExit):
        main(["zzzzzz"])
    assert "did you mean" not in capsys.readouterr().err
