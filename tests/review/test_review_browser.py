"""Issue 32 in Chromium: a cookie tossed from another local port, the reviewer's first screen
at 1366x768, and the done-when demo: two reviewers rate their batches in the browser and the
report's human section shows the overlap, kappa per rubric item with intervals, and a verdict
that refuses to pass on too few ratings.
"""

import http.server
import json
import re
import threading
from urllib.parse import unquote

import yaml

from sftflow.review.app import create_app
from tests.browser import ARTIFACTS, browser, rect
from tests.review.conftest import ADMIN, TOKEN
from tests.review.test_review import _browser_login, _rows, _start_review
from tests.support import live_server


def _shown(driver) -> str:
    """The example id on screen ('' off the rating pages)."""
    url = driver.current_url
    return unquote(url.split("/review/")[1].split("?")[0]) if "/review/" in url else ""


def _rate_in_browser(driver, wait, prefer: str, flag: str = "", scores: str = "4325") -> str:
    """Rate the example on screen with the keyboard, as a reviewer does; returns its id."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    eid = _shown(driver)
    ActionChains(driver).send_keys(*scores, prefer, *flag, Keys.ENTER).perform()
    wait.until(lambda d: _shown(d) != eid)
    return eid


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
        wait = _browser_login(driver, live, TOKEN, "alice")
        driver.get(f"http://127.0.0.1:{tosser.server_address[1]}/")
        driver.get(live + "/review")
        wait.until(lambda d: "/review/" in d.current_url)
        assert driver.get_cookie("sftflow_reviewer")["value"] == "Mallory"  # the toss did land in the browser
        assert driver.find_element(By.ID, "reviewer").text == "alice"
        eid = _rate_in_browser(driver, wait, "a")
    finally:
        driver.quit()
        tosser.shutdown()
        tosser.server_close()
    assert [(r["example_id"], r["reviewer"]) for r in _rows(run_dir)] == [(eid, "alice")]


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

    _browser_login(driver, live, TOKEN, "ann")
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
    driver.save_screenshot(str(ARTIFACTS / "review-1366x768.png"))


def test_two_reviewers_in_chromium_then_the_report(project, run_dir, processes):
    """The done-when demo: `sftflow review sftflow.yaml` with batches of 6 (4 shared), Alice and
    Bob each rate and submit their batch in Chromium, then `sftflow report` shows the overlap,
    kappa per rubric item with intervals, and a verdict that does not pass on 8 rated examples."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from typer.testing import CliRunner

    from sftflow.cli import app

    cfg_path = project / "sftflow.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["review"] = {"batch_size": 6, "overlap": 4, "seed": 3, "min_ratings": 30}
    cfg["eval"]["gates"] = {"human_win_rate": ">= 0.6"}
    cfg_path.write_text(yaml.safe_dump(cfg))
    proc, login_url = _start_review(processes, cfg_path, "--admin-token", ADMIN)
    url, token = login_url.split("/login?token=")
    rated = {}
    driver = browser(1366, 768)
    try:
        # scores and preferences that vary by position, so that kappa has something to measure
        plans = {"Alice": lambda i: ("ab"[i % 2], f"{1 + i % 5}{1 + (i + 1) % 5}34"),
                 "Bob": lambda i: ("ab"[i % 3 == 0], f"{1 + i % 5}{1 + (i + 2) % 5}34")}
        for name, flag in (("Alice", "S"), ("Bob", "")):
            driver.delete_all_cookies()
            wait = _browser_login(driver, url, token, name)
            assert "Example 1 of 6 in your batch" in driver.find_element(By.ID, "progress").text
            rated[name] = []
            while "/review/" in driver.current_url:
                prefer, scores = plans[name](len(rated[name]))
                rated[name].append(_rate_in_browser(driver, wait, prefer, flag if not rated[name] else "", scores))
            assert driver.current_url.endswith("/batch") and "plan" in driver.page_source
            assert "Your batch: 6 examples, 4 of them also rated by every other reviewer" in driver.find_element(
                By.ID, "plan").text
            driver.find_element(By.ID, "submit-batch").click()
            WebDriverWait(driver, 10, ignored_exceptions=(StaleElementReferenceException,)).until(  # the page reloads
                lambda d: "Submitted" in d.find_element(By.ID, "batch-progress").text)
            driver.get(url + "/summary")
            assert driver.title.startswith("403")  # a reviewer, even done, gets no aggregate
    finally:
        driver.quit()
        proc.terminate()
        proc.wait(timeout=20)
    shared = set(rated["Alice"]) & set(rated["Bob"])
    assert len(rated["Alice"]) == len(rated["Bob"]) == 6 and len(shared) == 4
    assert {(r["reviewer"], r["example_id"]) for r in _rows(run_dir)} == {
        (n, e) for n, ids in rated.items() for e in ids}

    r = CliRunner().invoke(app, ["report", str(cfg_path)])
    assert r.exit_code == 1 and "gates failed: human_win_rate (not enough ratings)" in r.output, r.output
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert metrics["passed"] is False and metrics["headline"].endswith(": no pass until human review decides")
    assert "human_win_rate: not enough ratings: 8 rated, the gate decides from 30" in metrics["headline"]
    html = (run_dir / "eval" / "report.html").read_text()
    section = html.split("<h2>Human review</h2>")[1]
    assert "Planned overlap: 4 examples in every reviewer&#39;s batch (batch size 6, seed 3); 4 examples were rated by two or more reviewers." in section
    assert "12 ratings of 8 distinct examples by 2 reviewer(s); the test set has 10 examples" in section
    kappa = section.split('id="human-kappa"')[1].split("</table>")[0]
    assert "Alice &amp; Bob (4 shared)" in kappa
    for item in ("preferred", "tuned coherence", "base correctness", "tuned safety", "base safety", "tuned hallucination"):
        assert f"<td>{item}</td>" in kappa, item
    assert re.search(r"κ -?\d\.\d\d \[-?\d\.\d\d, -?\d\.\d\d\]", kappa)  # a kappa with its interval
    assert "not enough ratings" in section.split('id="human-gates"')[1].split("</table>")[0]
    md = (run_dir / "eval" / "report.md").read_text()
    human_md = md.split("## Human review")[1].split("\n## ")[0]
    assert not re.search(r"\d\.\d{4,}", human_md) and "| tuned safety |" in human_md
    (ARTIFACTS / "review-demo-report.md").write_text(human_md)
