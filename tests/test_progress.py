"""No silent stretches: progress phases on a terminal (rich bar, count, ETA) and in logs (one
line per phase), and `sftflow eval` showing what it is doing before its first result."""

import io
import shutil

from rich.console import Console

from sftflow.progress import note, phase, reporting


def test_without_a_reporter_a_phase_costs_nothing():
    with phase("anything", 3) as update:
        update(1)
        update(3, 3)


def test_in_a_log_each_phase_is_one_line_and_inner_phases_are_quiet():
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with reporting(console, live=False):
        with phase("eval: tuned model: test answers", 191) as update:
            update(16)
            with phase("loading model tiny"):  # inside an outer phase: counted by it
                pass
        with phase("loading model tiny"):
            pass
    assert out.getvalue() == "eval: tuned model: test answers (191) …\nloading model tiny …\n"


def test_a_note_stays_in_the_output_and_costs_nothing_without_a_reporter():
    note("model: converted x.gguf")  # library use: nowhere to go
    for live in (False, True):
        out = io.StringIO()
        with reporting(Console(file=out, force_terminal=live, width=200), live=live):
            note("model: converted [x].gguf (Q4_1, dequantized to fp32)")  # text, not rich markup
        assert out.getvalue() == "model: converted [x].gguf (Q4_1, dequantized to fp32)\n"


def test_on_a_terminal_a_phase_is_a_bar_with_its_count():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with reporting(console) as reporter:
        assert reporter.live
        with phase("eval: base model: general facts", 31) as update:
            update(16)
            update(31)
        with phase("loading model [tiny]"):  # a spinner; brackets are text, not rich markup
            pass
    text = out.getvalue()
    assert "eval: base model: general facts" in text and "31/31" in text
    assert "loading model [tiny]" in text


def test_eval_shows_each_stretch_before_its_first_result(tmp_path_factory, tiny_model_dir):
    import torch
    from typer.testing import CliRunner

    from sftflow.cli import app
    from tests.tiny_run import shared_run

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = shared_run(tmp_path_factory, tiny_model_dir)
        root = tmp_path_factory.mktemp("progress") / "proj"
        shutil.copytree(run.parents[1], root)
        r = CliRunner().invoke(app, ["eval", str(root / "sftflow.yaml")])
    finally:
        torch.set_num_threads(before)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    order = ["loading the tuned model", "eval: tuned model: test answers (10) …", "eval: tuned model: regression probes",
             "loading model", "eval: base model: test answers (10) …", "eval: tuned: exact_match"]
    at = [next(i for i, line in enumerate(lines) if line.startswith(o)) for o in order]
    assert at == sorted(at), r.output
