"""The human-review web app: server-rendered pages, a little JavaScript for shortcuts.

    sftflow review runs/quickstart            # prints http://127.0.0.1:8765/login?token=...

Every page and API call needs the access token (login form, cookie, or `Authorization:
Bearer`). Reviewers name themselves at login. Each sees one test example at a time: the
prompt, the reference and the two outputs, base and tuned, as A and B in a per-reviewer
random order that is revealed only after the rating is stored. Bad input of any kind gets
a 4xx with a readable message; the only files served are two named static files and the
exports, generated from the database.

Cookies do not isolate ports, so a page on 127.0.0.1 at any other port counts as same-site
and the browser attaches the reviewer's cookies to a form it posts here. Every POST is
therefore checked twice: its Origin (or Referer) must be this app's own, and a session's
forms carry a token (an HMAC of the login session under the access token) that no other
page can read or compute.
"""

import difflib
import json
import re
import secrets
import time
import warnings
from pathlib import Path
from urllib.parse import quote, unquote

from jinja2 import Environment, FileSystemLoader

from sftflow import web
from sftflow.errors import SftflowError, SftflowWarning
from sftflow.ratings import current
from sftflow.review.stats import db_path, load_predictions, summarise_ratings
from sftflow.review.store import FLAGS, SCORES, AlreadyRated, ReviewStore, to_csv, to_jsonl
from sftflow.stats import win_rate_interval
from sftflow.web import csrf_token

HERE = Path(__file__).parent
STATIC = {"review.js": "text/javascript", "review.css": "text/css"}  # the only files ever served
EXPORTS = {"ratings.csv": ("text/csv", to_csv), "ratings.jsonl": ("application/x-ndjson", to_jsonl)}
TOKEN_COOKIE, REVIEWER_COOKIE, SESSION_COOKIE = "sftflow_review_token", "sftflow_reviewer", "sftflow_session"
NAME_RE = re.compile(r"^[\w][\w .@-]{0,39}$")
SESSION_RE = re.compile(r"^[A-Za-z0-9_-]{22,64}$")
CSRF_FIELD = "csrf"
MAX_FORM_BYTES = 64 * 1024
READ_TIMEOUT_S = 30.0  # to receive a whole form
MAX_TEXT = 2000
FORM_FIELDS = {CSRF_FIELD, "action", "preferred", *(f"{side}_{f}" for side in "ab" for f in (*SCORES, *FLAGS, "span", "note"))}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    # The login URL carries the token: never send it elsewhere. Not "no-referrer": with it, browsers
    # send `Origin: null` on the page's own form posts, and the origin check needs the real one.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


_TOKEN = re.compile(r"\w+|[^\w\s]+|\s+")


def diff_html(output: str, reference: str):
    """The output, HTML-escaped, with the words that differ from the reference in <mark>:
    what a reviewer should look at first. Only whole tokens are wrapped, so the page's text
    (and a span selected in it) is exactly the output."""
    from markupsafe import Markup, escape

    out, ref = _TOKEN.findall(output), _TOKEN.findall(reference)
    changed = [False] * len(out)
    for tag, _, _, j1, j2 in difflib.SequenceMatcher(None, ref, out, autojunk=False).get_opcodes():
        if tag in ("replace", "insert"):
            for j in range(j1, j2):
                changed[j] = not out[j].isspace()
    for j in range(1, len(out) - 1):  # one mark over "two words", not one per word
        changed[j] = changed[j] or (out[j].isspace() and changed[j - 1] and changed[j + 1])
    html, j = [], 0
    while j < len(out):
        k = j
        while k < len(out) and changed[k] == changed[j]:
            k += 1
        text = str(escape("".join(out[j:k])))
        html.append(f'<mark class="diff">{text}</mark>' if changed[j] else text)
        j = k
    return Markup("".join(html))


class ReviewError(Exception):
    """A request we refuse: status and a message for the reviewer."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _check_form(form) -> dict:
    """The submitted form, validated field by field (the server, not the page, is the judge)."""
    keys = list(form.keys())
    unknown = sorted(set(keys) - FORM_FIELDS)
    if unknown:
        raise ReviewError(400, f"unknown form field(s): {', '.join(unknown)[:200]}")
    repeated = sorted({k for k in keys if len(form.getlist(k)) > 1})
    if repeated:
        raise ReviewError(400, f"form field(s) sent more than once: {', '.join(repeated)}")
    values = {k: form[k] for k in keys}
    if any(not isinstance(v, str) for v in values.values()):
        raise ReviewError(400, "file uploads are not accepted here")
    action = values.get("action", "rate")
    if action not in ("rate", "skip"):
        raise ReviewError(400, f"action must be 'rate' or 'skip' (got {action[:40]!r})")
    if action == "skip":
        return {"skipped": 1}
    out: dict = {"skipped": 0}
    for side in "ab":
        for score in SCORES:
            key = f"{side}_{score}"
            raw = values.get(key, "").strip()
            if raw not in ("1", "2", "3", "4", "5"):
                shown = f" (got {raw[:20]!r})" if raw else " (missing)"
                raise ReviewError(400, f"{key}: choose a score from 1 to 5{shown}")
            out[key] = int(raw)
        for flag in FLAGS:
            raw = values.get(f"{side}_{flag}", "")
            if raw not in ("", "on", "1", "0"):
                raise ReviewError(400, f"{side}_{flag}: a checkbox value 'on' or nothing (got {raw[:20]!r})")
            out[f"{side}_{flag}"] = int(raw in ("on", "1"))
        for text in ("span", "note"):
            raw = values.get(f"{side}_{text}", "")
            if len(raw) > MAX_TEXT:
                raise ReviewError(400, f"{side}_{text}: at most {MAX_TEXT} characters")
            out[f"{side}_{text}"] = raw.strip()
    preferred = values.get("preferred", "")
    if preferred not in ("A", "B", "tie"):
        raise ReviewError(400, f"preferred: choose A, B or tie (got {preferred[:20]!r})" if preferred
                          else "preferred: choose A, B or tie (missing)")
    out["preferred"] = preferred
    return out


def _unblind(form: dict, a_model: str) -> dict:
    """Scores filed under the model that was shown on each side."""
    side_model = {"a": a_model, "b": "base" if a_model == "tuned" else "tuned"}
    row = {"skipped": form["skipped"], "a_model": a_model, "preferred": None}
    if form["skipped"]:
        return row
    for side, model in side_model.items():
        for f in (*SCORES, *FLAGS, "span", "note"):
            row[f"{model}_{f}"] = form[f"{side}_{f}"]
    row["preferred"] = "tie" if form["preferred"] == "tie" else side_model[form["preferred"].lower()]
    return row


class _Review:
    """What the routes share: the run's examples, the ratings store, the access token and the pages."""

    def __init__(self, run_dir: Path, token: str, read_timeout: float):
        self.run_dir, self.token, self.read_timeout = Path(run_dir), token, read_timeout
        self.order, self.predictions = load_predictions(self.run_dir)
        self.position = {eid: i for i, eid in enumerate(self.order)}
        self.store = ReviewStore(db_path(self.run_dir))
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True)

    @staticmethod
    def wants_json(request) -> bool:
        return "application/json" in request.headers.get("accept", "") or request.url.path.startswith("/api/")

    def page(self, name: str, status: int = 200, **context):
        from fastapi.responses import HTMLResponse

        html = self.env.get_template(name).render(run_name=self.run_dir.name, **context)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def error_response(self, request, status: int, message: str):
        from fastapi.responses import JSONResponse

        if self.wants_json(request):
            return JSONResponse({"error": {"status": status, "message": message}}, status_code=status,
                                headers=SECURITY_HEADERS)
        return self.page("error.html", status=status, status_code=status, message=message,
                         reviewer=self.reviewer_of(request), csrf=self.csrf_of(request))

    def token_ok(self, request) -> bool:
        given = web.bearer(request)
        return web.same_secret(request.cookies.get(TOKEN_COOKIE, "") if given is None else given, self.token)

    def reviewer_of(self, request) -> str | None:
        """The logged-in reviewer: the token, a valid name and a login session."""
        name = unquote(request.cookies.get(REVIEWER_COOKIE, ""))
        session = request.cookies.get(SESSION_COOKIE, "")
        return name if self.token_ok(request) and NAME_RE.match(name) and SESSION_RE.match(session) else None

    def csrf_of(self, request) -> str:
        reviewer = self.reviewer_of(request)
        return csrf_token(self.token, request.cookies[SESSION_COOKIE], reviewer) if reviewer else ""

    def check_csrf(self, request, form) -> None:
        """A session's form must carry its token (compared in constant time)."""
        expected, given = self.csrf_of(request), form.getlist(CSRF_FIELD)
        if not (expected and len(given) == 1 and isinstance(given[0], str) and web.same_secret(given[0], expected)):
            raise ReviewError(403, "form token missing or wrong: this form was not sent by this app's page "
                                   "(reload the page, or log in again, and resubmit)")

    def need_token(self, request) -> None:
        if not self.token_ok(request):
            raise ReviewError(401, "access token missing or wrong: log in at /login with the token the server printed")

    def need_reviewer(self, request) -> str:
        self.need_token(request)
        name = self.reviewer_of(request)
        if name is None:
            raise ReviewError(401, "no reviewer name: log in at /login")
        return name

    def progress(self, reviewer: str) -> dict:
        mine = current(self.store.ratings(reviewer), self.predictions)
        return {"done": len(mine), "skipped": sum(r["skipped"] for r in mine), "total": len(self.order),
                "ids": {r["example_id"] for r in mine}}

    def example(self, example_id: str) -> dict:
        if len(example_id) > 200 or example_id not in self.predictions:
            raise ReviewError(404, f"no example with id {example_id[:80]!r} in "
                                   f"{self.run_dir.name}/eval/predictions.jsonl")
        return self.predictions[example_id]

    def summary(self) -> dict:
        return summarise_ratings(self.order, self.predictions, self.store.ratings())

    async def read_form(self, request, max_fields: int):
        """The posted form: form content types only, at most MAX_FORM_BYTES (chunked bodies
        too), all of it within `read_timeout` seconds (a slow client gets 408)."""
        from starlette.exceptions import HTTPException

        kind = web.media_type(request)
        if kind not in ("application/x-www-form-urlencoded", "multipart/form-data"):
            raise ReviewError(415, f"send the page's form (got content-type {kind[:60] or 'none'!r})")
        try:
            body = await web.read_body(request, max_bytes=MAX_FORM_BYTES, timeout=self.read_timeout,
                                       too_large=f"request body over {MAX_FORM_BYTES // 1024} KiB", what="form")
        except web.BodyError as err:
            raise ReviewError(err.status, err.message) from err
        request._body = body  # starlette parses the form from this instead of the socket
        try:
            return await request.form(max_files=0, max_fields=max_fields, max_part_size=MAX_FORM_BYTES)
        except HTTPException:
            raise
        except Exception as err:  # a malformed multipart or urlencoded body
            raise ReviewError(400, f"malformed form data ({type(err).__name__})") from err

    def review_page(self, request, example_id: str, prev: str):
        """One example, its two outputs as A and B in this reviewer's order, and the last rating."""
        reviewer = self.need_reviewer(request)
        row = self.example(example_id)
        a_model = self.store.a_model(example_id, reviewer)
        b_model = "base" if a_model == "tuned" else "tuned"
        outputs = {"A": row[a_model], "B": row[b_model]}
        diffs = {side: diff_html(text, row["reference"]) for side, text in outputs.items()}
        thoughts = {"A": row.get(f"{a_model}_reasoning"), "B": row.get(f"{b_model}_reasoning")}  # <think>, apart
        rating = self.store.get(example_id, reviewer)
        if rating and rating not in current([rating], self.predictions):
            rating = None  # stale: rated before the outputs changed, so it is up for rating again
        previous = None
        if prev in self.predictions:
            p = self.store.get(prev, reviewer)
            if p:
                previous = {"id": prev, "a_model": p["a_model"], "preferred": p["preferred"], "skipped": p["skipped"]}
        return self.page("review.html", reviewer=reviewer, csrf=self.csrf_of(request), example=row,
                         example_id=example_id, outputs=outputs, diffs=diffs, thoughts=thoughts,
                         rating=rating, previous=previous, progress=self.progress(reviewer),
                         number=self.position[example_id] + 1, a_model=a_model)


def _add_error_handlers(app, r: _Review) -> None:
    """Every refusal as a page (or JSON for /api/ and JSON clients), never a bare 500."""
    from starlette.exceptions import HTTPException

    @app.exception_handler(ReviewError)
    async def _review_error(request, err: ReviewError):
        resp = r.error_response(request, err.status, err.message)
        if err.status in web.CLOSE_AFTER:
            resp.headers["connection"] = "close"
        return resp

    @app.exception_handler(HTTPException)
    async def _http_error(request, err: HTTPException):
        return r.error_response(request, err.status_code, f"{request.method} {request.url.path}: {err.detail}")

    @app.exception_handler(Exception)
    async def _unexpected(request, err: Exception):
        return r.error_response(request, 500,
                                f"internal error ({type(err).__name__}); the ratings stored so far are safe")


def _add_guards(app, r: _Review) -> None:
    """Checks on every request before any route reads it (the last added runs first)."""

    @app.middleware("http")
    async def same_origin_posts(request, call_next):
        """Browsers send Origin with every POST (Referer as a fallback): one from another origin,
        127.0.0.1 on another port included, is refused before anything is read or stored."""
        foreign = web.foreign_origin(request) if request.method not in ("GET", "HEAD", "OPTIONS") else None
        if foreign:
            sent, own = foreign
            resp = r.error_response(request, 403, f"cross-origin request refused: sent from {sent[:100]!r}, "
                                                  f"not from this app ({own[:100]})")
            resp.headers["connection"] = "close"  # its body is left unread
            return resp
        return await call_next(request)

    @app.middleware("http")
    async def limit_body(request, call_next):
        if web.declared_too_large(request, MAX_FORM_BYTES):
            resp = r.error_response(request, 413, f"request body over {MAX_FORM_BYTES // 1024} KiB")
            resp.headers["connection"] = "close"
            return resp
        return await call_next(request)


def _add_login(app, r: _Review) -> None:
    from fastapi import Query, Request
    from fastapi.responses import RedirectResponse

    @app.get("/")
    async def root(request: Request):
        return RedirectResponse("/review" if r.reviewer_of(request) else "/login", status_code=303)

    @app.get("/login")
    async def login_page(given: str = Query("", alias="token")):
        return r.page("login.html", token=given[:200], error="", reviewer=None)

    @app.post("/login")
    async def login(request: Request):
        form = await r.read_form(request, max_fields=5)
        given, name = form.get("token", ""), form.get("name", "")
        if not isinstance(given, str) or not isinstance(name, str):
            raise ReviewError(400, "token and name must be text")
        name = " ".join(name.split())
        if not web.same_secret(given.strip(), r.token):
            return r.page("login.html", status=401, token="", error="wrong access token", reviewer=None)
        if not NAME_RE.match(name):
            return r.page("login.html", status=400, token=given, reviewer=None,
                          error="name: 1-40 letters, digits, spaces or . @ - _, starting with a letter or digit")
        resp = RedirectResponse("/review", status_code=303)
        resp.set_cookie(TOKEN_COOKIE, r.token, httponly=True, samesite="strict")
        resp.set_cookie(REVIEWER_COOKIE, quote(name), httponly=True, samesite="strict")
        resp.set_cookie(SESSION_COOKIE, secrets.token_urlsafe(24), httponly=True, samesite="strict")
        return resp

    @app.post("/logout")
    async def logout(request: Request):
        if r.reviewer_of(request):
            r.check_csrf(request, await r.read_form(request, max_fields=3))
        resp = RedirectResponse("/login", status_code=303)
        for cookie in (TOKEN_COOKIE, REVIEWER_COOKIE, SESSION_COOKIE):
            resp.delete_cookie(cookie)
        return resp


def _add_rating(app, r: _Review) -> None:
    from fastapi import Request
    from fastapi.responses import JSONResponse, RedirectResponse

    @app.get("/review")
    async def next_example(request: Request, prev: str = ""):
        if not r.token_ok(request) or r.reviewer_of(request) is None:
            return RedirectResponse("/login", status_code=303)
        done = r.progress(r.reviewer_of(request))["ids"]
        todo = next((eid for eid in r.order if eid not in done), None)
        suffix = f"?prev={quote(prev[:200])}" if prev else ""
        return RedirectResponse(f"/review/{quote(todo, safe='')}{suffix}" if todo else f"/summary{suffix}",
                                status_code=303)

    @app.get("/review/{example_id}")
    async def review_page(request: Request, example_id: str, prev: str = ""):
        return r.review_page(request, example_id, prev)

    @app.post("/review/{example_id}")
    async def submit(request: Request, example_id: str):
        reviewer = r.need_reviewer(request)
        row = r.example(example_id)
        form = await r.read_form(request, max_fields=len(FORM_FIELDS) + 5)
        r.check_csrf(request, form)
        values = _check_form(form)
        rating = {"example_id": example_id, "reviewer": reviewer,
                  **_unblind(values, r.store.a_model(example_id, reviewer))}
        try:
            r.store.add(rating, tuned=row["tuned"], base=row["base"])
        except AlreadyRated as err:
            raise ReviewError(409, f"{err}; ratings cannot be changed (double submit?)") from err
        if r.wants_json(request):
            return JSONResponse({"stored": True, "a_model": rating["a_model"], "preferred": rating["preferred"]})
        return RedirectResponse(f"/review?prev={quote(example_id, safe='')}", status_code=303)


def _add_results(app, r: _Review) -> None:
    from fastapi import Request
    from fastapi.responses import JSONResponse, Response

    @app.get("/summary")
    async def summary_page(request: Request, prev: str = ""):
        reviewer = r.need_reviewer(request)
        return r.page("summary.html", reviewer=reviewer, csrf=r.csrf_of(request), s=r.summary(), finished=bool(prev),
                      interval=win_rate_interval)

    @app.get("/api/summary")
    async def summary_json(request: Request):
        r.need_token(request)
        return JSONResponse(json.loads(json.dumps(r.summary(), allow_nan=False)), headers=SECURITY_HEADERS)

    @app.get("/export/{filename}")
    async def export(request: Request, filename: str):
        r.need_token(request)
        if filename not in EXPORTS:
            raise ReviewError(404, f"no export named {filename[:80]!r}; use {' or '.join(EXPORTS)}")
        media, render = EXPORTS[filename]
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return Response(render(r.store.ratings()), media_type=media, headers={
            **SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{r.run_dir.name}-{stamp}-{filename}"'})

    @app.get("/static/{filename}")
    async def static(filename: str):
        if filename not in STATIC:  # a fixed list: no path from the request ever reaches the file system
            raise ReviewError(404, f"no static file {filename[:80]!r}")
        return Response((HERE / "static" / filename).read_bytes(), media_type=STATIC[filename],
                        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})


def create_app(run_dir: Path, token: str, *, read_timeout: float = READ_TIMEOUT_S):
    """The review app for one run: login, one example at a time, the summary and the exports."""
    from fastapi import FastAPI

    r = _Review(run_dir, token, read_timeout)
    app = FastAPI(title="sftflow review", docs_url=None, redoc_url=None, openapi_url=None)
    _add_error_handlers(app, r)
    _add_guards(app, r)
    _add_login(app, r)
    _add_rating(app, r)
    _add_results(app, r)
    return app


def serve_review(run_dir: Path, *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None,
                 log=print) -> None:
    run_dir = Path(run_dir)
    if (run_dir / "sftflow.yaml").exists() or run_dir.suffix in (".yaml", ".yml"):
        from sftflow.runs import resolve_run

        run_dir = resolve_run(run_dir).run_dir
    if not run_dir.is_dir():
        raise SftflowError(f"{run_dir}: not a folder; pass the run folder (e.g. runs/quickstart)")
    generated = not token
    token = token or secrets.token_urlsafe(18)
    if len(token) < 8:
        raise SftflowError("--token: use at least 8 characters")
    app = create_app(run_dir, token)  # reads predictions.jsonl: fails before binding if unusable
    if host not in web.LOOPBACK:
        warnings.warn(f"review on {host}: reachable from other machines; anyone with the token can read the "
                      "test set and rate", SftflowWarning, stacklevel=2)
    sock = web.bind(host, port)
    url = web.url_of(sock)
    n = len(load_predictions(run_dir)[0])
    log(f"review: {n} examples from {run_dir / 'eval' / 'predictions.jsonl'}; ratings in {db_path(run_dir)}")
    if generated:  # shown once so someone can log in; a token the user chose is never echoed
        log(f"review: open {url}/login?token={token}")
    else:
        log(f"review: open {url}/login (log in with the token from --token or $SFTFLOW_REVIEW_TOKEN)")
    log("review: ctrl-C stops (every rating is already saved)")
    try:
        web.uvicorn_server(app, sock).run(sockets=[sock])
    finally:
        sock.close()
