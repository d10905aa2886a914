#!/usr/bin/env python3
"""Quarry's web app benchmark: server time of the search page's first paint, highlighting of a
10,000-line file, and time to the first streamed result in a real headless Chromium compared
with the server's own time to its first match, in one run.

    bench/web.py CORPUS_DIR [--runs N] [--quarry PATH] [--out FILE]

CORPUS_DIR is what bench/make-corpus.sh made. Needs a release build of quarry and Debian's
chromium and chromium-driver."""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run  # noqa: E402  (the search benchmark's server handling and statistics)

PASSWORD = "benchmark-password"
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
HIGHLIGHT_LINES = 10_000


def timed_get(url, token):
    started = time.perf_counter()
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=120) as response:
        body = response.read()
    return time.perf_counter() - started, body


def timed_post(url, token, payload):
    started = time.perf_counter()
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(),
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        body = response.read()
    return time.perf_counter() - started, body


def ten_thousand_lines(repos):
    """A 10,000-line Rust text made of the corpus's own files (whole files, in path order)."""
    lines = []
    for dirpath, dirnames, filenames in sorted(os.walk(repos)):
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        for name in sorted(filenames):
            if name.endswith(".rs"):
                with open(os.path.join(dirpath, name), encoding="utf-8", errors="replace") as f:
                    lines.extend(f.read().splitlines())
            if len(lines) >= HIGHLIGHT_LINES:
                return "\n".join(lines[:HIGHLIGHT_LINES]) + "\n"
    return "\n".join(lines) + "\n"


class Browser:
    """Headless Chromium over WebDriver (chromedriver)."""

    def __init__(self):
        self.port = run.free_port()
        self.profile = tempfile.mkdtemp(prefix="quarry-bench-chromium-")
        # Its own session (process group), so that Chromium is stopped with it.
        self.driver = subprocess.Popen(["chromedriver", f"--port={self.port}"], start_new_session=True,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        run.wait_until_up(self.base + "/status", "chromedriver", 30, self.driver)
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", f"--user-data-dir={self.profile}"]
        session = self.call("POST", "/session", {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}}}})
        self.base += "/session/" + session["sessionId"]

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.load(response)["value"]

    def goto(self, url):
        self.call("POST", "/url", {"url": url})

    def element(self, css):
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                return self.call("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]
            except urllib.error.HTTPError:
                time.sleep(0.02)
        raise SystemExit(f"no element {css}")

    def type(self, element, text):
        self.call("POST", f"/element/{element}/value", {"text": text})

    def script(self, source):
        return self.call("POST", "/execute/sync", {"script": source, "args": []})

    def close(self):
        try:
            self.call("DELETE", "")
        finally:
            os.killpg(self.driver.pid, signal.SIGKILL)
            self.driver.wait()


def browser_first_result(browser, url, query):
    """Milliseconds from submitting a query on the search page to its first result in the DOM."""
    browser.goto(url + "/search")
    box = browser.element("#q")
    browser.type(box, query + "\ue007")
    deadline = time.time() + 60
    while time.time() < deadline:
        timing = browser.script("return window.quarrySearchTiming || null")
        if timing and timing.get("query") == query and timing.get("firstResult") is not None:
            return timing["firstResult"] - timing["started"]
        time.sleep(0.01)
    raise SystemExit(f"no result in the browser for {query}")


def ms(seconds):
    return f"{seconds * 1000:.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--quarry", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(HERE, "..", "target")), "release", "quarry"))
    parser.add_argument("--queries", default=os.path.join(HERE, "queries.tsv"))
    parser.add_argument("--out")
    args = parser.parse_args()

    repos = os.path.join(os.path.abspath(args.corpus), "repos")
    repository_count = len([d for d in os.listdir(repos) if os.path.isdir(os.path.join(repos, d, ".git"))])
    text, _files = run.text_size(repos)
    work = tempfile.mkdtemp(prefix="quarry-web-bench-")
    data = os.path.join(work, "data")
    os.makedirs(data)
    quarry = run.Quarry(args.quarry, data, repos)
    while not quarry.ready(repository_count):
        time.sleep(0.5)

    report = []
    say = report.append
    say(f"Corpus: {repository_count} repositories, {text / 2**20:.0f} MiB of text; {args.runs} runs each, "
        f"warm; {os.cpu_count()} cores.\n")

    # 1. The search page as the server renders it (first paint), next to the stream API.
    say("### Search page: server time to first paint\n")
    say("| query | results on the page | page p50 ms | page p95 ms | stream: first match p50 ms | stream: done p50 ms |")
    say("|---|---:|---:|---:|---:|---:|")
    queries = [q for _kind, q, _rg, _cs in run.load_queries(args.queries)]
    selective = []
    for query in queries:
        page_url = quarry.url + "/search?" + urllib.parse.urlencode({"q": query})
        timed_get(page_url, quarry.token)
        pages = []
        body = b""
        for _ in range(args.runs):
            seconds, body = timed_get(page_url, quarry.token)
            pages.append(seconds)
        shown = body.count(b'class="result"')
        streams = [quarry.search(query) for _ in range(args.runs)]
        first = run.percentile([s[1] for s in streams], 50)
        done = run.percentile([s[0] for s in streams], 50)
        if 0 < streams[0][2] < 100:
            selective.append((query, first))
        say(f"| `{query}` | {shown} | {ms(run.percentile(pages, 50))} | {ms(run.percentile(pages, 95))} "
            f"| {ms(first)} | {ms(done)} |")

    # 2. Highlighting a 10,000-line file.
    code = ten_thousand_lines(repos)
    payload = {"filepath": "big.rs", "code": code}
    timed_post(quarry.url + "/.api/highlight", quarry.token, payload)
    runs = []
    answer = {}
    for _ in range(max(args.runs, 20)):
        seconds, body = timed_post(quarry.url + "/.api/highlight", quarry.token, payload)
        runs.append(seconds)
        answer = json.loads(body)
    say("\n### Highlighting a 10,000-line Rust file (`POST /.api/highlight`)\n")
    say(f"{len(code) / 1024:.0f} KiB, {code.count(chr(10))} lines, plain text: {answer.get('plaintext')}: "
        f"p50 {ms(run.percentile(runs, 50))} ms, p95 {ms(run.percentile(runs, 95))} ms (goal: at most 200 ms).\n")

    # 3. Time to the first streamed result in Chromium against the server's first match.
    say("### Time to first result in Chromium against the server's first match\n")
    say("| query | browser: submit to first result p50 ms | server: request to first match p50 ms | difference ms |")
    say("|---|---:|---:|---:|")
    browser = Browser()
    try:
        browser.goto(quarry.url + "/sign-in")
        browser.type(browser.element("input[name=email]"), "bench")
        browser.type(browser.element("input[name=password]"), PASSWORD + "\ue007")
        browser.element("header a[href^='/users/']")
        for query, server_first in selective:
            browser_first_result(browser, quarry.url, query)
            times = [browser_first_result(browser, quarry.url, query) for _ in range(args.runs)]
            browser_ms = run.percentile(times, 50)
            say(f"| `{query}` | {browser_ms:.1f} | {ms(server_first)} | {browser_ms - server_first * 1000:.1f} |")
    finally:
        browser.close()
        quarry.stop()

    out = "\n".join(report) + "\n"
    print(out)
    if args.out:
        with open(args.out, "w") as f:
            f.write(out)


if __name__ == "__main__":
    main()
