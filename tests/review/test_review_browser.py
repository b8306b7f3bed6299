"""Issue 32 in Chromium: a cookie tossed from another local port, the reviewer's first screen
at 1366x768, and the done-when demo on the tiny run and on the quickstart run (README command
1's; skipped without it unless SFTFLOW_REQUIRE_QUICKSTART=1): two reviewers rate their batches
in the browser and the report's human section shows the overlap, kappa per rubric item with
intervals, and a verdict that refuses to pass on too few ratings (tests/review/session.py).
"""

import http.server
import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from sftflow.review.app import create_app
from tests.browser import browser, rect, screenshot
from tests.review.conftest import ADMIN, TOKEN
from tests.review.session import browser_login, rate_in_browser, stored_ratings, two_reviewers_then_the_report
from tests.support import live_server

QUICKSTART = Path(__file__).resolve().parents[2] / "quickstart"  # README command 1 makes it (CI: .ci/run)


class _Tosser(http.server.BaseHTTPRequestHandler):
    """Another local server: any page it serves sets the reviewer cookie to a name it chose."""

    def do_GET(self):  # noqa: N802
        body = b"<p>nothing to see</p>"
        self.send_response(200)
        self.send_header("Set-Cookie", "sftflow_reviewer=Mallory; Path=/")
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_cookie_tossed_from_another_port_does_not_change_the_reviewer(run_dir, live):
    """Defect 3: after visiting a page on another port that sets `sftflow_reviewer=Mallory`,
    /review said "signed in as Mallory" and ratings were stored under that name."""
    from selenium.webdriver.common.by import By

    tosser = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Tosser)
    threading.Thread(target=tosser.serve_forever, daemon=True).start()
    driver = browser()
    try:
        wait = browser_login(driver, live, TOKEN, "alice")
        driver.get(f"http://127.0.0.1:{tosser.server_address[1]}/")
        driver.get(live + "/review")
        wait.until(lambda d: "/review/" in d.current_url)
        assert driver.get_cookie("sftflow_reviewer")["value"] == "Mallory"  # the toss did land in the browser
        assert driver.find_element(By.ID, "reviewer").text == "alice"
        eid = rate_in_browser(driver, wait)
    finally:
        driver.quit()
        tosser.shutdown()
        tosser.server_close()
    assert [(r["example_id"], r["reviewer"]) for r in stored_ratings(run_dir)] == [(eid, "alice")]


def test_the_first_screen_at_1366x768(run_dir):
    """Defect 5: at 1366x768 the two outputs started below the fold under the prompt, the
    reference and the rubric; `?` opened help off-screen. The example gets the long system
    prompt a real project has, so a page that shows the prompt first pushes the answers down."""
    path = run_dir / "eval" / "predictions.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rules = "\n".join(f"Rule {i}: answer with one JSON object, keys intent, product and urgency only." for i in range(14))
    for r in rows:
        r["prompt"][0]["content"] = rules
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    driver = browser(1366, 768)
    try:
        with live_server(create_app(run_dir, TOKEN, admin_token=ADMIN)) as live:
            _first_screen(driver, live)
    finally:
        driver.quit()


def _first_screen(driver, live):
    """What a reviewer sees first, measured in the browser."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    browser_login(driver, live, TOKEN, "ann")
    a, b = driver.find_element(By.ID, "out-a"), driver.find_element(By.ID, "out-b")
    ra, rb = rect(driver, a), rect(driver, b)
    assert ra["vh"] <= 768 and ra["vw"] <= 1366
    assert ra["top"] < ra["vh"] - 80 and rb["top"] < rb["vh"] - 80, (ra, rb)  # both answers start on screen
    assert abs(ra["top"] - rb["top"]) < 2 and ra["right"] <= rb["left"]  # side by side
    main = driver.find_element(By.TAG_NAME, "main").text
    assert "Answer A" in main and "Answer B" in main
    for jargon in ("tuned", "SYSTEM", "USER", "access token printed"):
        assert jargon not in main, jargon
    for details in ("prompt", "rubric"):  # collapsible, closed at first
        element = driver.find_element(By.ID, details)
        assert element.tag_name == "details" and element.get_attribute("open") is None
    prompt = driver.find_element(By.ID, "prompt")
    prompt.find_element(By.TAG_NAME, "summary").click()
    assert "Rule 13" in prompt.text and "Instructions to the model" in prompt.text
    prompt.find_element(By.TAG_NAME, "summary").click()
    driver.execute_script("window.scrollTo(0, 0)")
    ActionChains(driver).send_keys("?").perform()
    help_box = driver.find_element(By.ID, "help")
    h = rect(driver, help_box)
    assert help_box.is_displayed() and h["top"] >= 0 and h["bottom"] <= h["vh"] and h["right"] <= h["vw"], h
    screenshot(driver, "review-1366x768.png")


def test_two_reviewers_in_chromium_then_the_report(project, run_dir, processes):
    """The done-when demo on the tiny run: `sftflow review sftflow.yaml` with batches of 6 (4
    shared), Alice and Bob each rate and submit their batch in Chromium, then `sftflow report`
    shows the overlap, kappa per rubric item with intervals, and a verdict that does not pass."""
    typed = two_reviewers_then_the_report(project, run_dir, processes,
                                          {"batch_size": 6, "overlap": 4, "seed": 3, "min_ratings": 30})
    assert [len(mine) for mine in typed.values()] == [6, 6]


@pytest.fixture
def quickstart_project(tmp_path):
    """A private copy of README command 1's project and run (config, data folder, run without
    its checkpoints): the test writes ratings and a report, never into quickstart/ itself."""
    run = QUICKSTART / "runs" / "quickstart"
    if not (run / "eval" / "predictions.jsonl").is_file():
        if os.environ.get("SFTFLOW_REQUIRE_QUICKSTART") == "1":
            pytest.fail(f"no quickstart run at {run}: README command 1 makes it")
        pytest.skip("no quickstart run: README command 1 (sftflow init quickstart && sftflow run ...) makes it")
    dest = tmp_path / "quickstart"
    dest.mkdir()
    shutil.copy(QUICKSTART / "sftflow.yaml", dest / "sftflow.yaml")
    shutil.copytree(QUICKSTART / "data", dest / "data")
    shutil.copytree(run, dest / "runs" / "quickstart", ignore=lambda folder, names:
                    ["checkpoints"] if Path(folder) == run else [])
    return dest


def test_two_reviewers_on_the_quickstart_run(quickstart_project, processes):
    """The done-when demo on the quickstart run (191 test examples here): batches of 12 with 8
    planned to be shared; Alice rates and submits hers, Bob leaves after 6 of the shared ones.
    The report shows planned overlap 8 and 6 examples rated twice, kappa for every rubric item
    with intervals, and "not enough ratings" on the human gate."""
    run_dir = quickstart_project / "runs" / "quickstart"
    typed = two_reviewers_then_the_report(quickstart_project, run_dir, processes,
                                          {"batch_size": 12, "overlap": 8, "seed": 7, "min_ratings": 30},
                                          bob_leaves_after=6, artifact="review-quickstart")
    assert len(typed["Alice"]) == 12 and 6 <= len(typed["Bob"]) <= 12
