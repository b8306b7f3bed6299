"""Load test for `sftflow serve`: requests/s and latency at concurrency 1 vs 8.

    python bench/serve_load.py quickstart/runs/quickstart                  # 200 requests per level
    python bench/serve_load.py RUN_DIR --requests 400 --concurrency 1,4,8,16 --json out.json
    python bench/serve_load.py --url http://127.0.0.1:8000 --model quickstart   # a running server

Without --url the server is started in this process on a free 127.0.0.1 port, exactly as
`sftflow serve` builds it. Each level sends a fixed number of chat requests (prompts from
the run's eval/predictions.jsonl, greedy, fixed max_tokens) from that many client threads,
so it always stops by itself, and prints requests/s, p50/p95 latency, errors and the
server's mean batch size (from /health) for that level.
"""

import argparse
import json
import math
import sys
import threading
import time
from pathlib import Path

FALLBACK_PROMPTS = [
    "my laptop keeps disconnecting from the wifi, please help",
    "can I return the headphones I bought last week?",
    "What is the capital of France?",
    "the router arrived broken. I need a replacement today!",
]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def prompts_of(run_dir: Path | None) -> list[list[dict]]:
    path = run_dir / "eval" / "predictions.jsonl" if run_dir else None
    if path and path.exists():
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if rows:
            return [r["prompt"] for r in rows]
    return [[{"role": "user", "content": p}] for p in FALLBACK_PROMPTS]


def load_test(url: str, model: str, prompts: list[list[dict]], *, requests: int, concurrency: int,
              max_tokens: int = 32, api_key: str | None = None, timeout: float = 120.0) -> dict:
    """Send `requests` chat completions from `concurrency` threads; every thread stops when
    the shared counter runs out, so the test is bounded."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    lock = threading.Lock()
    state = {"next": 0}
    latencies: list[float] = []
    errors: list[str] = []
    tokens = [0]

    def worker():
        with httpx.Client(base_url=url, headers=headers, timeout=timeout) as client:
            while True:
                with lock:
                    i = state["next"]
                    if i >= requests:
                        return
                    state["next"] = i + 1
                body = {"model": model, "messages": prompts[i % len(prompts)], "temperature": 0,
                        "max_tokens": max_tokens}
                t0 = time.perf_counter()
                try:
                    r = client.post("/v1/chat/completions", json=body)
                    ok = r.status_code == 200
                    usage = r.json().get("usage", {}) if ok else {}
                except httpx.HTTPError as err:
                    ok, usage, r = False, {}, err
                dt = time.perf_counter() - t0
                with lock:
                    if ok:
                        latencies.append(dt)
                        tokens[0] += usage.get("completion_tokens", 0)
                    else:
                        errors.append(str(getattr(r, "text", r))[:200])

    before = httpx.get(f"{url}/health", timeout=timeout).json()
    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    after = httpx.get(f"{url}/health", timeout=timeout).json()
    batches = after["batches"] - before["batches"]
    return {
        "concurrency": concurrency,
        "requests": requests,
        "ok": len(latencies),
        "errors": len(errors),
        "error_samples": errors[:3],
        "seconds": round(seconds, 3),
        "requests_per_s": round(len(latencies) / seconds, 2),
        "completion_tokens_per_s": round(tokens[0] / seconds, 1),
        "p50_ms": round(1000 * percentile(latencies, 50), 1),
        "p95_ms": round(1000 * percentile(latencies, 95), 1),
        "mean_batch": round((after["requests"] - before["requests"]) / batches, 2) if batches else None,
    }


def start_server(run_dir: Path, *, threads: int | None = None, max_batch: int = 16, batch_wait_ms: float = 10):
    """The `sftflow serve` app on a free port in a background thread; returns (url, model, stop)."""
    from sftflow.model.engine import Engine
    from sftflow.runs import load_run, resolve_run
    from sftflow.serve.app import create_app
    from sftflow.web import bind, url_of, uvicorn_server

    run = resolve_run(run_dir)
    model, template = load_run(run, threads=threads)
    engine = Engine(model, template, max_batch=max_batch, batch_wait_ms=batch_wait_ms).start()
    sock = bind("127.0.0.1", 0)
    server = uvicorn_server(create_app(engine, run.name), sock)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start within 30 s")
        time.sleep(0.02)

    def stop():
        server.should_exit = True
        thread.join(timeout=10)
        engine.stop()
        sock.close()

    return url_of(sock), run.name, stop


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", nargs="?", type=Path, help="run folder to serve in-process (or use --url)")
    ap.add_argument("--url", help="an already running server, e.g. http://127.0.0.1:8000")
    ap.add_argument("--model", help="model id on that server (default: the run's name)")
    ap.add_argument("--api-key", help="for a server started with --api-key")
    ap.add_argument("--requests", type=int, default=200, help="requests per concurrency level")
    ap.add_argument("--concurrency", default="1,8", help="comma-separated levels")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None, help="torch threads for the in-process server")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    if not args.url and not args.run_dir:
        ap.error("give a RUN_DIR to serve, or --url of a running server")
    levels = [int(c) for c in args.concurrency.split(",")]
    stop = None
    if args.url:
        url, model = args.url.rstrip("/"), args.model
        if not model:
            ap.error("--model is needed with --url")
    else:
        url, model, stop = start_server(args.run_dir, threads=args.threads)
    prompts = prompts_of(args.run_dir)
    try:
        load_test(url, model, prompts, requests=4, concurrency=1, max_tokens=args.max_tokens,
                  api_key=args.api_key)  # warm-up, not reported
        results = [load_test(url, model, prompts, requests=args.requests, concurrency=c, max_tokens=args.max_tokens,
                             api_key=args.api_key) for c in levels]
    finally:
        if stop:
            stop()
    print(f"{'concurrency':>11} {'requests':>8} {'errors':>6} {'req/s':>7} {'tok/s':>7} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'mean batch':>10}")
    for r in results:
        print(f"{r['concurrency']:>11} {r['requests']:>8} {r['errors']:>6} {r['requests_per_s']:>7} "
              f"{r['completion_tokens_per_s']:>7} {r['p50_ms']:>8} {r['p95_ms']:>8} {r['mean_batch'] or '-':>10}")
    if len(results) > 1 and results[0]["requests_per_s"]:
        print(f"throughput at concurrency {levels[-1]} vs {levels[0]}: "
              f"{results[-1]['requests_per_s'] / results[0]['requests_per_s']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
