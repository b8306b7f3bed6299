"""The human-review web app: server-rendered pages, a little JavaScript for shortcuts.

    sftflow review runs/quickstart      # prints a reviewer login URL and an admin login URL

Two tokens: reviewers log in with the access token and a name, the admin with the admin token.
A login is a server-side session (review/identity.py): the browser holds a random session id,
and the name a rating is filed under is read from the database, never from a cookie.

Reviews are independent and blind. Each reviewer rates an assigned batch (review/assign.py:
a seeded sample, with a planned overlap between reviewers) and sees only their own ratings;
the summary, the exports and every aggregate are for the admin. Which answer came from the
fine-tuned model is never shown while rating (with review.reveal_after_batch, it is shown
after the reviewer submits the batch), and both answers always get the same panels. Ratings
can be corrected until the batch is submitted.

Cookies do not isolate ports, so a page on 127.0.0.1 at any other port counts as same-site
and the browser attaches the reviewer's cookies to a form it posts here. Every POST is
therefore checked twice: its Origin (or Referer) must be this app's own, and a session's
forms carry a token (an HMAC of the login session under a per-server secret) that no other
page can read or compute. Bad input of any kind gets a 4xx with a readable message; the only
files served are two named static files and the exports, generated from the database.
"""

import json
import re
import secrets
import time
import warnings
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader

from sftflow import web
from sftflow.config.review import ReviewConfig
from sftflow.errors import SftflowError, SftflowWarning
from sftflow.ratings import current
from sftflow.review.assign import batch, plan_text
from sftflow.review.forms import CSRF_FIELD, FORM_FIELDS, ReviewError, as_form, check_form, diff_html, unblind
from sftflow.review.identity import Identities, Login
from sftflow.review.stats import db_path, load_predictions, summarise_ratings
from sftflow.review.store import ReviewStore, to_csv, to_jsonl
from sftflow.stats import win_rate_interval
from sftflow.web import csrf_token

HERE = Path(__file__).parent
STATIC = {"review.js": "text/javascript", "review.css": "text/css"}  # the only files ever served
EXPORTS = {"ratings.csv": ("text/csv", to_csv), "ratings.jsonl": ("application/x-ndjson", to_jsonl)}
SESSION_COOKIE = "sftflow_session"
OLD_COOKIES = ("sftflow_review_token", "sftflow_reviewer")  # what earlier versions set: cleared at login
NAME_RE = re.compile(r"^[\w][\w .@-]{0,39}$")
SESSION_RE = re.compile(r"^[A-Za-z0-9_-]{22,64}$")
MAX_FORM_BYTES = 64 * 1024
READ_TIMEOUT_S = 30.0  # to receive a whole form
ROLES = {"system": "Instructions to the model", "user": "Question", "assistant": "Earlier answer",
         "tool": "Tool result"}  # plain words for the chat roles
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    # The login URL carries the token: never send it elsewhere. Not "no-referrer": with it, browsers
    # send `Origin: null` on the page's own form posts, and the origin check needs the real one.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def example_url(example_id: str) -> str:
    """The page of one example: the id escaped whole ('/' too), matched by a path route."""
    return "/review/" + quote(example_id, safe="")


class _Review:
    """What the routes share: the run's examples, the store, the two tokens, settings and pages."""

    def __init__(self, run_dir: Path, token: str, admin_token: str, settings: ReviewConfig, read_timeout: float):
        self.run_dir, self.token, self.admin_token = Path(run_dir), token, admin_token
        self.settings, self.read_timeout = settings, read_timeout
        self.secret = secrets.token_urlsafe(32)  # keys the form tokens: per server, never sent anywhere
        self.order, self.predictions = load_predictions(self.run_dir)
        self.store = ReviewStore(db_path(self.run_dir))
        self.ids = Identities(self.store)
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True)
        self.env.filters["example_url"] = example_url

    @staticmethod
    def wants_json(request) -> bool:
        return "application/json" in request.headers.get("accept", "") or request.url.path.startswith("/api/")

    def page(self, template: str, request=None, status: int = 200, **context):
        from fastapi.responses import HTMLResponse

        login = self.login_of(request) if request is not None else None
        context.setdefault("csrf", self.csrf_of(request) if request is not None else "")
        html = self.env.get_template(template).render(run_name=self.run_dir.name, login=login, **context)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def error_response(self, request, status: int, message: str):
        from fastapi.responses import JSONResponse

        if self.wants_json(request):
            return JSONResponse({"error": {"status": status, "message": message}}, status_code=status,
                                headers=SECURITY_HEADERS)
        return self.page("error.html", request, status=status, status_code=status, message=message)

    def login_of(self, request) -> Login | None:
        """Who this request's session belongs to (None: not logged in)."""
        session = request.cookies.get(SESSION_COOKIE, "")
        return self.ids.who(session) if SESSION_RE.match(session) else None

    def reviewer_of(self, request) -> str | None:
        login = self.login_of(request)
        return login.name if login and login.role == "reviewer" else None

    def is_admin(self, request) -> bool:
        given = web.bearer(request)
        if given is not None:
            return web.same_secret(given, self.admin_token)
        login = self.login_of(request)
        return bool(login and login.role == "admin")

    def csrf_of(self, request) -> str:
        login = self.login_of(request)
        if login is None:
            return ""
        return csrf_token(self.secret, request.cookies[SESSION_COOKIE], login.name or "\0admin")

    def check_csrf(self, request, form) -> None:
        """A session's form must carry its token (compared in constant time)."""
        expected, given = self.csrf_of(request), form.getlist(CSRF_FIELD)
        if not (expected and len(given) == 1 and isinstance(given[0], str) and web.same_secret(given[0], expected)):
            raise ReviewError(403, "form token missing or wrong: this form was not sent by this app's page "
                                   "(reload the page, or log in again, and resubmit)")

    def need_reviewer(self, request) -> str:
        name = self.reviewer_of(request)
        if name is None:
            raise ReviewError(401, "not logged in as a reviewer: log in at /login with the access token "
                                   "you were given and your name")
        return name

    def need_admin(self, request) -> None:
        if self.is_admin(request):
            return
        if self.login_of(request) is None:
            raise ReviewError(401, "admin token missing or wrong: log in at /login with the admin token")
        raise ReviewError(403, "the summary and the exports are for the admin: reviewers see only their own "
                               "ratings, so that each judgement stays independent")

    def batch_of(self, name: str) -> list[str]:
        reviewer = self.ids.find(name)
        return batch(self.order, reviewer.number if reviewer else 0, self.settings)

    def submitted(self, name: str) -> bool:
        reviewer = self.ids.find(name)
        return bool(reviewer and reviewer.submitted)

    def my_ratings(self, name: str) -> dict[str, dict]:
        """This reviewer's current ratings of their batch, by example id."""
        mine = {r["example_id"]: r for r in current(self.store.ratings(name), self.predictions)}
        return {eid: mine[eid] for eid in self.batch_of(name) if eid in mine}

    def progress(self, name: str) -> dict:
        todo, mine = self.batch_of(name), self.my_ratings(name)
        return {"done": len(mine), "skipped": sum(r["skipped"] for r in mine.values()), "total": len(todo),
                "submitted": self.submitted(name)}

    def example(self, example_id: str, name: str) -> dict:
        if len(example_id) > 200 or example_id not in self.predictions:
            raise ReviewError(404, f"no example with id {example_id[:80]!r} in "
                                   f"{self.run_dir.name}/eval/predictions.jsonl")
        if example_id not in self.batch_of(name):
            raise ReviewError(404, f"example {example_id[:80]!r} is not in your batch: go to /review for your next one")
        return self.predictions[example_id]

    def summary(self) -> dict:
        return summarise_ratings(self.order, self.predictions, self.store.ratings(), self.settings, self.ids.all())

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

    def review_page(self, request, example_id: str, saved: bool):
        """One example, its two answers as A and B in this reviewer's order, and their own rating
        of it (editable until the batch is submitted). Nothing on it says which model is which."""
        reviewer = self.need_reviewer(request)
        row = self.example(example_id, reviewer)
        a_model = self.store.a_model(example_id, reviewer)
        b_model = "base" if a_model == "tuned" else "tuned"
        outputs = {"A": row[a_model], "B": row[b_model]}
        diffs = {side: diff_html(text, row["reference"]) for side, text in outputs.items()}
        thoughts = {"A": row.get(f"{a_model}_reasoning"), "B": row.get(f"{b_model}_reasoning")}  # <think>, apart
        rating = self.my_ratings(reviewer).get(example_id)
        todo = self.batch_of(reviewer)
        return self.page("review.html", request, reviewer=reviewer, example=row, example_id=example_id,
                         outputs=outputs, diffs=diffs, thoughts=thoughts, any_reasoning=any(thoughts.values()),
                         values=as_form(rating) if rating else {}, rated=rating is not None, saved=saved,
                         progress=self.progress(reviewer), number=todo.index(example_id) + 1, roles=ROLES,
                         question=_question(row["prompt"]), plan=plan_text(self.order, self.settings))


def _question(prompt: list[dict]) -> str:
    """The last user message, shortened: what the collapsed prompt shows."""
    text = next((str(m.get("content") or "") for m in reversed(prompt) if m.get("role") == "user"), "")
    text = " ".join(text.split())
    return text if len(text) <= 160 else text[:157] + "…"


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
        login = r.login_of(request)
        return RedirectResponse("/login" if login is None else "/summary" if login.role == "admin" else "/review",
                                status_code=303)

    @app.get("/login")
    async def login_page(request: Request, given: str = Query("", alias="token")):
        return r.page("login.html", request, token=given[:200], error="", name="", reuse=None)

    @app.post("/login")
    async def login(request: Request):
        form = await r.read_form(request, max_fields=6)
        given, name, same = form.get("token", ""), form.get("name", ""), form.get("same_person", "")
        if not all(isinstance(v, str) for v in (given, name, same)):
            raise ReviewError(400, "token and name must be text")
        given, name = given.strip(), " ".join(name.split())
        if web.same_secret(given, r.admin_token):
            return _logged_in(r.ids.open_session("admin"), "/summary")
        if not web.same_secret(given, r.token):
            return r.page("login.html", status=401, token="", name=name, reuse=None, error="wrong access token")
        if not NAME_RE.match(name):
            return r.page("login.html", status=400, token=given, name="", reuse=None,
                          error="name: 1-40 letters, digits, spaces or . @ - _, starting with a letter or digit")
        existing = r.ids.find(name)
        if existing and same != "on":
            return r.page("login.html", status=409, token=given, name=existing.name, reuse=existing.name,
                          error=f"the name {existing.name!r} is already in use (names ignore upper and lower case). "
                                f"If you are {existing.name}, tick the box below to continue your batch; "
                                "otherwise choose another name.")
        return _logged_in(r.ids.open_session("reviewer", r.ids.claim(name).name), "/review")

    def _logged_in(session: str, to: str):
        resp = RedirectResponse(to, status_code=303)
        resp.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="strict")
        for cookie in OLD_COOKIES:
            resp.delete_cookie(cookie)
        return resp

    @app.post("/logout")
    async def logout(request: Request):
        if r.login_of(request):
            r.check_csrf(request, await r.read_form(request, max_fields=3))
            r.ids.close_session(request.cookies[SESSION_COOKIE])
        resp = RedirectResponse("/login", status_code=303)
        for cookie in (SESSION_COOKIE, *OLD_COOKIES):
            resp.delete_cookie(cookie)
        return resp


def _add_rating(app, r: _Review) -> None:
    from fastapi import Request
    from fastapi.responses import JSONResponse, RedirectResponse

    @app.get("/review")
    async def next_example(request: Request, saved: str = ""):
        reviewer = r.reviewer_of(request)
        if reviewer is None:
            return RedirectResponse("/summary" if r.is_admin(request) else "/login", status_code=303)
        done = r.my_ratings(reviewer)
        todo = next((eid for eid in r.batch_of(reviewer) if eid not in done), None)
        suffix = "?saved=1" if saved else ""
        return RedirectResponse(example_url(todo) + suffix if todo else "/batch", status_code=303)

    @app.get("/review/{example_id:path}")
    async def review_page(request: Request, example_id: str, saved: str = ""):
        return r.review_page(request, example_id, bool(saved))

    @app.post("/review/{example_id:path}")
    async def submit(request: Request, example_id: str):
        reviewer = r.need_reviewer(request)
        row = r.example(example_id, reviewer)
        form = await r.read_form(request, max_fields=len(FORM_FIELDS) + 5)
        r.check_csrf(request, form)
        values = check_form(form)
        if r.submitted(reviewer):
            raise ReviewError(409, "you submitted your batch: its ratings are final now")
        rating = {"example_id": example_id, "reviewer": reviewer,
                  **unblind(values, r.store.a_model(example_id, reviewer))}
        r.store.add(rating, tuned=row["tuned"], base=row["base"])
        if r.wants_json(request):
            return JSONResponse({"stored": True})  # which side was which stays on the server
        return RedirectResponse("/review?saved=1", status_code=303)

    @app.get("/batch")
    async def batch_page(request: Request):
        reviewer = r.need_reviewer(request)
        mine, todo = r.my_ratings(reviewer), r.batch_of(reviewer)
        progress = r.progress(reviewer)
        reveal = progress["submitted"] and r.settings.reveal_after_batch
        rows = [{"number": i + 1, "id": eid, "rating": mine.get(eid), "form": as_form(mine[eid]) if eid in mine else None}
                for i, eid in enumerate(todo)]
        return r.page("batch.html", request, reviewer=reviewer, rows=rows, progress=progress, reveal=reveal,
                      plan=plan_text(r.order, r.settings))

    @app.post("/batch")
    async def submit_batch(request: Request):
        reviewer = r.need_reviewer(request)
        r.check_csrf(request, await r.read_form(request, max_fields=3))
        left = r.progress(reviewer)
        if left["done"] < left["total"]:
            raise ReviewError(409, f"rate or skip the {left['total'] - left['done']} example(s) left in your batch first")
        r.ids.submit(reviewer)
        return RedirectResponse("/batch", status_code=303)


def _add_results(app, r: _Review) -> None:
    from fastapi import Request
    from fastapi.responses import JSONResponse, Response

    @app.get("/summary")
    async def summary_page(request: Request):
        r.need_admin(request)
        return r.page("summary.html", request, s=r.summary(), interval=win_rate_interval,
                      plan=plan_text(r.order, r.settings))

    @app.get("/api/summary")
    async def summary_json(request: Request):
        r.need_admin(request)
        return JSONResponse(json.loads(json.dumps(r.summary(), allow_nan=False)), headers=SECURITY_HEADERS)

    @app.get("/export/{filename}")
    async def export(request: Request, filename: str):
        r.need_admin(request)
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


def create_app(run_dir: Path, token: str, *, admin_token: str | None = None, settings: ReviewConfig | None = None,
               read_timeout: float = READ_TIMEOUT_S):
    """The review app for one run: login, each reviewer's batch, the admin's summary and exports.
    Without `admin_token`, a random one nobody knows: no admin access."""
    from fastapi import FastAPI

    admin_token = admin_token or secrets.token_urlsafe(24)
    if web.same_secret(admin_token, token):
        raise SftflowError("the admin token must differ from the reviewers' access token")
    r = _Review(run_dir, token, admin_token, settings or ReviewConfig(), read_timeout)
    app = FastAPI(title="sftflow review", docs_url=None, redoc_url=None, openapi_url=None)
    _add_error_handlers(app, r)
    _add_guards(app, r)
    _add_login(app, r)
    _add_rating(app, r)
    _add_results(app, r)
    return app


def review_settings(run_dir: Path, config: Path | None = None) -> ReviewConfig:
    """The `review:` section of the project config (given), else of the run's config.yaml."""
    import yaml

    path = config if config is not None else Path(run_dir) / "config.yaml"
    if not path.exists():
        return ReviewConfig()
    section = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("review") or {}
    try:
        return ReviewConfig(**section)
    except ValueError as err:
        raise SftflowError(f"{path}: review: {str(err).splitlines()[-1].strip()}") from err


def serve_review(run_dir: Path, *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None,
                 admin_token: str | None = None, log=print) -> None:
    run_dir, config = Path(run_dir), None
    if (run_dir / "sftflow.yaml").exists() or run_dir.suffix in (".yaml", ".yml"):
        from sftflow.runs import resolve_run

        config = run_dir if run_dir.suffix in (".yaml", ".yml") else run_dir / "sftflow.yaml"
        run_dir = resolve_run(run_dir).run_dir
    if not run_dir.is_dir():
        raise SftflowError(f"{run_dir}: not a folder; pass the run folder (e.g. runs/quickstart)")
    generated, admin_generated = not token, not admin_token
    token = token or secrets.token_urlsafe(18)
    admin_token = admin_token or secrets.token_urlsafe(18)
    if len(token) < 8 or len(admin_token) < 8:
        raise SftflowError("--token / --admin-token: use at least 8 characters")
    settings = review_settings(run_dir, config)
    app = create_app(run_dir, token, admin_token=admin_token, settings=settings)  # fails before binding if unusable
    if host not in web.LOOPBACK:
        warnings.warn(f"review on {host}: reachable from other machines; anyone with the token can read the "
                      "test set and rate", SftflowWarning, stacklevel=2)
    sock = web.bind(host, port)
    url = web.url_of(sock)
    n = len(load_predictions(run_dir)[0])
    log(f"review: {n} examples from {run_dir / 'eval' / 'predictions.jsonl'}; ratings in {db_path(run_dir)}")
    log(f"review: {plan_text(load_predictions(run_dir)[0], settings)}")
    if generated:  # shown once so someone can log in; a token the user chose is never echoed
        log(f"review: open {url}/login?token={token}")
    else:
        log(f"review: open {url}/login (log in with the token from --token or $SFTFLOW_REVIEW_TOKEN)")
    if admin_generated:
        log(f"review: admin (summary, exports; keep it from reviewers): {url}/login?token={admin_token}")
    log("review: ctrl-C stops (every rating is already saved)")
    try:
        web.uvicorn_server(app, sock).run(sockets=[sock])
    finally:
        sock.close()
