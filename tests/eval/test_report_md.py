"""report.md shows what models wrote as text: HTML in a prompt or an output is never live
markup in a Markdown viewer, and pipes and line breaks do not break its tables (issue 17).

The oracle is an independent Markdown renderer (markdown-it-py, CommonMark + tables, raw
HTML passed through as permissive viewers do), read back with the standard HTML parser.
"""

import json
import shutil
from html.parser import HTMLParser

import pytest

from tests.tiny_run import shared_run

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
HOSTILE_OUTPUT = f"{SCRIPT} a | b\nsecond line \\| [x](https://example.invalid/t.png) & `code` {IMG}"
HOSTILE_PROMPT = f"{IMG} what is | this?\r\n{SCRIPT}"


class Tables(HTMLParser):
    """Every <table> as rows of cell texts (a <br> read back as a line break), and every tag seen."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables, self.tags, self._cell = [], [], None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append("\n")

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture
def run_dir(tmp_path_factory, tiny_model_dir, tmp_path):
    built = shared_run(tmp_path_factory, tiny_model_dir)
    shutil.copytree(built.parents[1], tmp_path / "proj")
    return tmp_path / "proj" / "runs" / "tiny"


def test_html_in_predictions_is_text_in_report_md(run_dir):
    from markdown_it import MarkdownIt

    from sftflow.eval.report import write_report

    path = run_dir / "eval" / "predictions.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["tuned"] = HOSTILE_OUTPUT
    rows[0]["prompt"][-1]["content"] = HOSTILE_PROMPT
    rows[0]["tuned_metrics"]["exact_match"] = 0.0  # among the worst examples, so it is in a table
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_report(run_dir, run_dir.parents[1] / "data", "tiny")

    html = MarkdownIt("commonmark", {"html": True}).enable("table").render((run_dir / "eval" / "report.md").read_text())
    page = Tables()
    page.feed(html)
    assert "script" not in [t for t, _ in page.tags]
    assert not [a for t, a in page.tags if t == "a" and "example.invalid" in a.get("href", "")]  # not a link
    # the only images are report.md's own plots, files beside it (an output's <img src=x> is text)
    assert all(attrs.get("src", "").startswith("report_images/") for t, attrs in page.tags if t == "img")
    worst = next(t for t in page.tables if t[0][:3] == ["prompt", "reference", "tuned"])
    assert all(len(row) == 4 for row in worst)  # no pipe or line break split or ended a row
    row = next(r for r in worst if SCRIPT in r[2])
    assert row[0] == HOSTILE_PROMPT.replace("\r\n", "\n") and row[2] == HOSTILE_OUTPUT
