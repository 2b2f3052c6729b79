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


def test_models_shows_progress_while_it_counts(capsys):
    """The first count of every named model takes about 20 s: it is never silent (one line in a log, a
    line rewritten with the model being counted on a terminal)."""
    import io

    from mixnas.cli.format import Progress
    from mixnas.cli.models import model_rows

    main(["models", "--family", "mixer"])
    out = capsys.readouterr()
    assert "counting params and MACs" in out.err and "models ..." in out.err and "mixer_b16_224" in out.out

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    term = Terminal()
    bar = Progress(2, "counting", stream=term)
    seen = []
    model_rows(["mixer_s16_224", "mixer_b16_224"], on_row=bar.done,
               on_start=lambda name: (bar.start(name), seen.append(term.getvalue())))
    assert "counting: 1/2 mixer_s16_224" in seen[0]  # shown before the count, not after it
    assert "counting: 2/2 mixer_b16_224" in seen[1] and term.getvalue().endswith("done" + " " * 30 + "\n")
