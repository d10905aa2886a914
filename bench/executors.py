#!/usr/bin/env python3
"""Quarry's executor benchmark: jobs of one trivial step through one instance and several
`quarry executor run` processes, on SQLite and PostgreSQL, with the sandbox and without it, in
one run: jobs per second, queued-to-started latency (pickup) of jobs queued one at a time while
executors are idle, and the step's own duration with and without the sandbox.

    bench/executors.py [--jobs N] [--executors N] [--slots N] [--quarry PATH] [--postgres URL] [--out FILE]

--postgres names a PostgreSQL server (a database is created and dropped there); without it only
SQLite is measured. Needs a release build of quarry, git, and Debian's bubblewrap (run as root,
for the step cgroups)."""

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run  # noqa: E402  (server start-up, site admin token, percentiles)

SECRET = "the executors' benchmark secret"
PICKUPS = 50
QUEUE = ("mutation($repo: ID!, $config: String) { queueAutoIndexJobsForRepo(repository: $repo, "
         "configuration: $config) { id } }")
# One step writing a tiny SCIP index (metadata naming the tool `t`), which is then uploaded.
JOB = json.dumps({"index_jobs": [{"indexer": "host", "indexer_args": [
    "sh", "-c", "printf '\\012\\005\\022\\003\\012\\001t' > index.scip"]}]})


def graphql(url, token, query, variables=None):
    request = urllib.request.Request(
        url + "/.api/graphql", data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        answer = json.load(response)
    if answer.get("errors"):
        raise SystemExit(f"GraphQL error: {answer['errors']}")
    return answer["data"]


def ms(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000


def indexes(url, token):
    data = graphql(url, token, "{ preciseIndexes(first: 1000) { nodes { state queuedAt startedAt finishedAt "
                               "steps { key durationMilliseconds } } } }")
    return data["preciseIndexes"]["nodes"]


def wait_done(url, token, count):
    """Waits until none of the `count` jobs, all queued already, is queued or running (polling a
    count only, so the wait costs the instance little), then reads them all once."""
    while True:
        data = graphql(url, token, "{ preciseIndexes(states: [QUEUED_FOR_INDEXING, INDEXING], first: 1) "
                                   "{ totalCount } }")
        if data["preciseIndexes"]["totalCount"] == 0:
            break
        time.sleep(0.25)
    nodes = indexes(url, token)
    if len(nodes) < count:
        raise SystemExit(f"{len(nodes)} jobs listed, {count} queued")
    bad = [n for n in nodes if n["state"] != "QUEUED_FOR_PROCESSING"]
    if bad:
        raise SystemExit(f"jobs failed: {bad[:3]}")
    return nodes


class Instance:
    def __init__(self, binary, database_url):
        self.work = tempfile.mkdtemp(prefix="quarry-executor-bench-")
        code = os.path.join(self.work, "code", "app")
        os.makedirs(code)
        subprocess.run(["git", "init", "-q", code], check=True)
        with open(os.path.join(code, "README.md"), "w") as f:
            f.write("app\n")
        subprocess.run(["git", "-C", code, "add", "-A"], check=True)
        subprocess.run(["git", "-C", code, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "a"], check=True)
        config = os.path.join(self.work, "site.json")
        with open(config, "w") as f:
            json.dump({"executors.accessToken": SECRET}, f)
        self.port = run.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        data = os.path.join(self.work, "data")
        args = [binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", data,
                "--site-config", config, os.path.join(self.work, "code")]
        if database_url:
            args += ["--database-url", database_url]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                        stderr=open(os.path.join(self.work, "serve.log"), "w"))
        run.wait_until_up(self.url + "/-/healthz", "quarry", 60, self.process,
                          os.path.join(self.work, "serve.log"))
        self.token = run.admin_token(binary, self.url, data) if not database_url else self.token_for_postgres(binary, database_url)
        while True:
            repos = graphql(self.url, self.token, "{ repositories(first: 1) { nodes { id mirrorInfo { cloned } } } }")
            nodes = repos["repositories"]["nodes"]
            if nodes and nodes[0]["mirrorInfo"]["cloned"]:
                self.repo = nodes[0]["id"]
                break
            time.sleep(0.1)

    def token_for_postgres(self, binary, database_url):
        account = {"username": "bench", "email": "bench@quarry.invalid", "password": "benchmark-password"}
        request = urllib.request.Request(self.url + "/-/site-init", data=json.dumps(account).encode(),
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=30).read()
        created = subprocess.run([binary, "admin", "token", "create", "--user", "bench", "--database-url", database_url],
                                 capture_output=True, text=True, check=True)
        return created.stdout.strip()

    def enqueue(self):
        graphql(self.url, self.token, QUEUE, {"repo": self.repo, "config": JOB})

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=60)


def start_executors(binary, url, count, slots, runtime, work):
    env = dict(os.environ, EXECUTOR_FRONTEND_URL=url, EXECUTOR_FRONTEND_PASSWORD=SECRET,
               EXECUTOR_QUEUE_NAME="codeintel", EXECUTOR_MAXIMUM_NUM_JOBS=str(slots), EXECUTOR_SANDBOX=runtime,
               EXECUTOR_SANDBOX_ROOTFS="host", EXECUTOR_WORKSPACE_ROOT=os.path.join(work, "workspaces"),
               SRC_PROF_HTTP="")
    return [subprocess.Popen([binary, "executor", "run"], env=env, stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(work, f"executor-{i}.log"), "w")) for i in range(count)]


def measure(binary, database_url, runtime, jobs, executors, slots):
    instance = Instance(binary, database_url)
    workers = start_executors(binary, instance.url, executors, slots, runtime, instance.work)
    try:
        time.sleep(1.0)  # executors announce themselves and start waiting
        # Pickup: one job at a time, executors idle.
        for i in range(PICKUPS):
            instance.enqueue()
            wait_done(instance.url, instance.token, i + 1)
        nodes = indexes(instance.url, instance.token)
        pickups = [ms(n["startedAt"]) - ms(n["queuedAt"]) for n in nodes]
        steps = [s["durationMilliseconds"] for n in nodes for s in n["steps"] if s["key"] == "indexer"]
        # Throughput: a burst, queued by four clients at once.
        before = {p.pid: run.cpu_seconds(p.pid) for p in [instance.process] + workers}
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: instance.enqueue(), range(jobs)))
        enqueued = time.perf_counter() - started
        nodes = wait_done(instance.url, instance.token, min(1000, PICKUPS + jobs))
        elapsed = time.perf_counter() - started
        after = {p.pid: run.cpu_seconds(p.pid) for p in [instance.process] + workers}
        burst = sorted(nodes, key=lambda n: ms(n["queuedAt"]))[-jobs:]
        processing = (max(ms(n["finishedAt"]) for n in burst) - min(ms(n["startedAt"]) for n in burst)) / 1000
        used = lambda pids, which: sum(after[p][which] - before[p][which] for p in pids) * 1000 / jobs
        executor_pids = [w.pid for w in workers]
        return {
            "pickup_p50": run.percentile(pickups, 50), "pickup_p99": run.percentile(pickups, 99),
            "step_p50": run.percentile(steps, 50), "jobs_per_second": jobs / elapsed,
            "processing_per_second": jobs / processing, "enqueue_seconds": enqueued, "elapsed": elapsed,
            "cpu": (used([instance.process.pid], 0), used([instance.process.pid], 1),
                    used(executor_pids, 0), used(executor_pids, 1)),
        }
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=60)
        instance.stop()


def postgres_database(server):
    name = f"quarry_bench_{os.getpid()}_{int(time.time())}"
    parsed = urllib.parse.urlparse(server)
    admin = ["psql", "-h", parsed.hostname or "127.0.0.1", "-p", str(parsed.port or 5432),
             "-U", parsed.username or "postgres", "-d", "postgres", "-qc"]
    subprocess.run(admin + [f'CREATE DATABASE "{name}"'], check=True)
    url = parsed._replace(path="/" + name).geturl()
    return url, lambda: subprocess.run(admin + [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'], check=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--executors", type=int, default=3)
    # A sandboxed step mostly waits (on the host's cgroup moves), so slots beyond the cores pay.
    parser.add_argument("--slots", type=int, default=4, help="EXECUTOR_MAXIMUM_NUM_JOBS of each executor")
    parser.add_argument("--quarry", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(HERE, "..", "target")), "release", "quarry"))
    parser.add_argument("--postgres")
    parser.add_argument("--out")
    args = parser.parse_args()
    jobs = min(args.jobs, 1000 - PICKUPS)

    lines = [f"{jobs} jobs of one step (writing a tiny index, then uploaded) after {PICKUPS} queued one at a time; {args.executors} executors "
             f"of {args.slots} slots each; {os.cpu_count()} cores; each job's commit is checked out from the executor's mirror of its "
             "repository (fetched through the instance once); the burst is queued by 4 clients at once.\n",
             "| database | runtime | jobs/s | of which processing jobs/s | pickup p50 ms | pickup p99 ms | step p50 ms | "
             "queueing the burst s | CPU ms per job: instance / its git / executors / their steps and git |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    step = {}
    backends = [("SQLite", None)] + ([("PostgreSQL", args.postgres)] if args.postgres else [])
    for label, server in backends:
        for runtime in ("bubblewrap", "shell"):
            cleanup = None
            url = None
            if server:
                url, cleanup = postgres_database(server)
            try:
                result = measure(args.quarry, url, runtime, jobs, args.executors, args.slots)
            finally:
                if cleanup:
                    cleanup()
            step[(label, runtime)] = result["step_p50"]
            cpu = " / ".join(f"{v:.1f}" for v in result["cpu"])
            lines.append(f"| {label} | {runtime} | {result['jobs_per_second']:.0f} | {result['processing_per_second']:.0f} | "
                         f"{result['pickup_p50']:.0f} | {result['pickup_p99']:.0f} | {result['step_p50']:.0f} | "
                         f"{result['enqueue_seconds']:.1f} | {cpu} |")
    lines.append("")
    for label, _ in backends:
        overhead = step[(label, "bubblewrap")] - step[(label, "shell")]
        lines.append(f"Sandbox overhead per step ({label}): {overhead:.0f} ms "
                     f"(step p50 {step[(label, 'bubblewrap')]:.0f} ms in bubblewrap, {step[(label, 'shell')]:.0f} ms bare).")
    out = "\n".join(lines) + "\n"
    print(out)
    if args.out:
        with open(args.out, "w") as f:
            f.write(out)


if __name__ == "__main__":
    main()
