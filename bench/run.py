#!/usr/bin/env python3
"""Quarry's search benchmark: index build and size, memory, and the query mix through the stream
API, side by side with ripgrep and codesearch (cindex/csearch) on the same files, in one run.

    bench/run.py CORPUS_DIR [--runs N] [--quarry PATH] [--out FILE]

CORPUS_DIR is what bench/make-corpus.sh made. The report (Markdown) goes to standard output and,
with --out, to a file. Needs a release build of quarry, rg, and cindex/csearch (Debian's
ripgrep and codesearch packages)."""

import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def percentile(values, p):
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[index]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def text_size(root):
    total = files = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                total += os.path.getsize(path)
                files += 1
    return total, files


def dir_size(root):
    return sum(
        os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs
    )


def peak_rss(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def load_queries(path):
    queries = []
    with open(path) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            kind, query, rg_args, cs_args = line.rstrip("\n").split("\t")
            queries.append((kind, query, shlex.split(rg_args), shlex.split(cs_args)))
    return queries


def admin_token(binary, url, data_dir):
    """Initialises the instance's site admin (once per data directory) and returns a new access
    token of it, as a deployment script would."""
    account = {"username": "bench", "email": "bench@quarry.invalid", "password": "benchmark-password"}
    request = urllib.request.Request(
        url + "/-/site-init",
        data=json.dumps(account).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        urllib.request.urlopen(request, timeout=30).read()
    except urllib.error.HTTPError as e:
        if e.code != 409:  # already initialised by an earlier start
            raise
    created = subprocess.run(
        [binary, "admin", "token", "create", "--user", "bench", "--data-dir", data_dir],
        capture_output=True, text=True, check=True,
    )
    return created.stdout.strip()


class Quarry:
    def __init__(self, binary, data_dir, repos, restarted=False):
        self.restarted = restarted
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(data_dir, f"quarry-{self.port}.log")
        env = dict(os.environ, QUARRY_LOG_FORMAT="json")
        self.process = subprocess.Popen(
            [binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", data_dir, repos],
            stdout=subprocess.DEVNULL,
            stderr=open(self.log_path, "w"),
            env=env,
        )
        wait_until_up(self.url + "/-/healthz", "quarry", 60, self.process, self.log_path)
        self.token = admin_token(binary, self.url, data_dir)

    def open(self, query):
        """The stream API's answer to a query, as the site admin."""
        url = self.url + "/.api/search/stream?" + urllib.parse.urlencode({"q": query})
        request = urllib.request.Request(url, headers={"Authorization": f"token {self.token}"})
        return urllib.request.urlopen(request, timeout=120)

    def search(self, query):
        """Runs a search; returns (seconds to done, seconds to first match, matched lines)."""
        started = time.perf_counter()
        first = None
        lines = 0
        event = None
        # Counted, not decoded, and read in the chunks the server sends rather than line by line
        # in Python: the client should cost as little as rg's pipe does (a matches event is one
        # line of up to megabytes).
        with self.open(query) as response:
            line_parts = []
            finished = False
            while not finished:
                chunk = response.read1(1 << 16)
                if not chunk:
                    break
                start = 0
                while not finished:
                    end = chunk.find(b"\n", start)
                    if end < 0:
                        line_parts.append(chunk[start:])
                        break
                    line_parts.append(chunk[start:end])
                    start = end + 1
                    raw = b"".join(line_parts)
                    line_parts = []
                    if raw.startswith(b"event: "):
                        event = raw[7:].strip()
                    elif raw.startswith(b"data: ") and event == b"matches":
                        if first is None:
                            first = time.perf_counter() - started
                        lines += raw.count(b'"contentStart"') + raw.count(b'"type":"path"')
                    elif raw.startswith(b"data: ") and event == b"done":
                        finished = True
        total = time.perf_counter() - started
        return total, first if first is not None else total, lines

    def ready(self, repositories):
        """Whether every repository is cloned and searched through its index. The log is read
        first, so that waiting does not load the machine with searches while it indexes."""
        indexed = set()
        with open(self.log_path) as f:
            for line in f:
                if '"message":"indexed"' in line:
                    indexed.add(json.loads(line).get("repo"))
        if len(indexed) < repositories and not self.restarted:
            return False
        with self.open("count:1 quarrybenchready") as response:
            progress = None
            event = None
            for raw in response:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "progress":
                    progress = json.loads(line[6:])
        if not progress or progress["repositoriesCount"] < repositories:
            return False
        reasons = {s["reason"] for s in progress["skipped"]}
        return not reasons & {"repository-unindexed", "repository-cloning"}

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)

    def log(self):
        entries = []
        with open(self.log_path) as f:
            for line in f:
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    pass
        return entries


def cpu_seconds(pid):
    """CPU time (user and system) of a running process, and of the children it has waited for."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def wait_idle(pid, seconds=120):
    """Waits until a process uses under 5% of a core over a second (at most `seconds`)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        before = sum(cpu_seconds(pid))
        time.sleep(1)
        if sum(cpu_seconds(pid)) - before < 0.05:
            return


def wait_until_up(url, what, seconds, process=None, log=None):
    """Waits for `url` to answer; gives up after `seconds`, or when `process` has exited."""
    deadline = time.time() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            if time.time() > deadline or (process is not None and process.poll() is not None):
                raise SystemExit(f"{what} did not start" + (f"; see {log}" if log else ""))
            time.sleep(0.05)


def timed(command, cwd, env=None):
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started, result.stdout.count(b"\n")


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
    text, files = text_size(repos)
    queries = load_queries(args.queries)
    cores = os.cpu_count()
    report = []
    say = report.append

    work = tempfile.mkdtemp(prefix="quarry-bench-")
    data = os.path.join(work, "data")
    os.makedirs(data)

    # 1. Mirror and index everything from scratch.
    started = time.perf_counter()
    quarry = Quarry(args.quarry, data, repos)
    while not quarry.ready(repository_count):
        if time.perf_counter() - started > 3600:
            raise SystemExit(f"not every repository was indexed within an hour; see {quarry.log_path}")
        time.sleep(0.5)
    ready_after = time.perf_counter() - started
    quarry.stop()

    # 1b. Index again from the clones alone, in a fresh process with nothing else to do: the
    # build's own wall clock, CPU (the process and the git processes it waited for) and memory.
    shutil.rmtree(os.path.join(data, "index"))
    started = time.perf_counter()
    quarry = Quarry(args.quarry, data, repos)
    while not quarry.ready(repository_count):
        if time.perf_counter() - started > 3600:
            raise SystemExit(f"the index was not rebuilt within an hour; see {quarry.log_path}")
        time.sleep(0.2)
    index_wall = time.perf_counter() - started
    index_cpu = sum(cpu_seconds(quarry.process.pid))
    indexing_rss = peak_rss(quarry.process.pid)
    quarry.stop()
    log = quarry.log()
    indexed = [e for e in log if e.get("message") == "indexed"]
    indexed_text = sum(e.get("text_bytes", 0) for e in indexed)
    index_bytes = dir_size(os.path.join(data, "index"))

    # 2. codesearch's index of the same files.
    csearch_index = os.path.join(work, "csearchindex")
    cs_env = dict(os.environ, CSEARCHINDEX=csearch_index)
    cindex_seconds, _ = timed(["cindex", repos], cwd=repos, env=cs_env)
    cindex_bytes = os.path.getsize(csearch_index) if os.path.exists(csearch_index) else 0

    # 3. Serve the queries from a fresh process (warm page cache); each query's runs are followed
    # at once by the same search's runs with ripgrep and codesearch, so that whatever else the
    # machine does in those seconds falls on the three alike, and each tool runs warm.
    quarry = Quarry(args.quarry, data, repos, restarted=True)
    while not quarry.ready(repository_count):
        time.sleep(0.2)
    # Start-up work (the first sync of the code host connection walks every repository's tree)
    # would otherwise share the cores with the first queries: measure the steady state.
    wait_idle(quarry.process.pid)
    results = []
    for kind, query, rg_args, cs_args in queries:
        full = query + " count:all"
        rg = ["rg", "-uu", "--glob", "!.git", "--no-heading", "-n", "--no-messages"] + rg_args + ["."]
        cs = ["csearch", "-n"] + cs_args
        quarry.search(full)
        runs = [quarry.search(full) for _ in range(args.runs)]
        timed(rg, repos)
        rg_runs = [timed(rg, repos) for _ in range(args.runs)]
        timed(cs, repos, cs_env)
        cs_runs = [timed(cs, repos, cs_env) for _ in range(args.runs)]
        results.append({
            "kind": kind, "query": query,
            "quarry": [r[0] for r in runs], "first": [r[1] for r in runs], "quarry_lines": runs[0][2],
            "rg": [t for t, _ in rg_runs], "rg_lines": rg_runs[0][1],
            "cs": [t for t, _ in cs_runs], "cs_lines": cs_runs[0][1],
        })
    serving_rss = peak_rss(quarry.process.pid)
    quarry.stop()
    shutil.rmtree(work, ignore_errors=True)

    mb = 1024 * 1024
    ms = lambda s: f"{s * 1000:.1f}"
    say(f"Corpus: {repository_count} repositories, {files} files, {text / mb:.0f} MiB of text; "
        f"{cores} cores; {args.runs} runs per query after one warm-up; every query with `count:all`.")
    say("")
    say("| measure | Quarry | codesearch (cindex) |")
    say("|---|---|---|")
    say(f"| clone + index from scratch, wall clock | {ready_after:.1f} s | – |")
    say(f"| index build from the clones, wall clock ({cores} cores) | {index_wall:.1f} s | "
        f"{cindex_seconds:.1f} s (one core) |")
    say(f"| index build, CPU time (the process and its git) | {index_cpu:.1f} s = "
        f"{indexed_text / mb / max(index_cpu, 1e-9):.0f} MB of text per CPU-second | "
        f"{text / mb / max(cindex_seconds, 1e-9):.0f} MB/s |")
    say(f"| index size / text | {index_bytes / mb:.0f} MiB = {index_bytes / max(text, 1):.2f}x "
        f"(contents included) | {cindex_bytes / mb:.0f} MiB = {cindex_bytes / max(text, 1):.2f}x (no contents) |")
    say(f"| peak RSS while indexing | {indexing_rss / mb:.0f} MiB | – |")
    say(f"| peak RSS while serving the mix | {serving_rss / mb:.0f} MiB = {serving_rss / max(text, 1):.2f}x text | – |")
    say("")
    say("| kind | query | Quarry p50 / p95 ms | first result p50 ms | rg p50 ms | csearch p50 ms | rg ÷ Quarry | csearch ÷ Quarry | lines Quarry / rg / csearch |")
    say("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        q50, q95 = percentile(r["quarry"], 50), percentile(r["quarry"], 95)
        f50 = percentile(r["first"], 50)
        rg50, cs50 = percentile(r["rg"], 50), percentile(r["cs"], 50)
        query = r["query"].replace("|", "\\|")
        say(f"| {r['kind']} | `{query}` | {ms(q50)} / {ms(q95)} | {ms(f50)} | {ms(rg50)} | {ms(cs50)} | "
            f"{rg50 / q50:.1f}x | {cs50 / q50:.1f}x | {r['quarry_lines']} / {r['rg_lines']} / {r['cs_lines']} |")
    text_out = "\n".join(report) + "\n"
    sys.stdout.write(text_out)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text_out)


if __name__ == "__main__":
    main()
