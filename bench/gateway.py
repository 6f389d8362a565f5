"""Gateway benchmark: our ``POST /v1/chat/completions`` against LiteLLM proxy and Portkey's
gateway, side by side.

One command sets everything up, measures four targets one after the other on the same fake
upstream, prints one table and checks the targets:

    .venv/bin/python bench/gateway.py [--duration 4] [--rounds 3] [--skip-litellm]
                                      [--skip-portkey] [--only-direct]
    make bench-gateway

Setup (idempotent; fast when done): the Debian packages ``nginx`` and ``wrk``; LiteLLM proxy in
its own venv ``bench/.venv-litellm``; Portkey's open-source gateway (npm
``@portkey-ai/gateway``, run with the machine's ``node``) in ``bench/.portkey-gateway`` (both
git-ignored); a temporary directory holding everything else, removed on exit together with every
process started (also on Ctrl-C and errors).

The fake OpenAI upstream is a private nginx (``worker_processes 1``, ``access_log off``): ``POST
/v1/chat/completions`` answers a fixed ``chat.completion`` JSON with usage, or a fixed SSE stream
(``chat.completion.chunk`` events, a usage chunk, ``data: [DONE]``) when the body says
``"stream": true``; ``GET /v1/models`` lists one model. Plain nginx cannot look at a body before
``return``, so ``mirror_request_body`` reads it first and ``error_page`` routes on a ``map`` of
``$request_body``.

Targets, measured one at a time (never two servers under load together):

* direct nginx: the baseline, what a client gets with no gateway at all;
* our gateway: ``ump-llm serve`` on a temporary SQLite with one connection ``bench``, started
  as ``make run`` starts it: default settings (no per-request access log, the health monitor on);
* LiteLLM proxy: one model ``bench`` -> ``openai/fake-model`` on the same nginx, master key, no
  database, one worker.
* Portkey gateway: ``node build/start-server.js --headless``, configured per request by its
  ``x-portkey-provider: openai`` and ``x-portkey-custom-host`` headers (the same nginx), bound to
  127.0.0.1 by a preloaded module (it listens on every address otherwise). Its streaming fails
  on Node 20 (a TypeError inside undici), so it is measured on plain chat only.

The server under test runs on CPU 0 (``taskset -c 0``); nginx, wrk and the streaming client run on
CPU 1. For each target: requests/s with wrk at 1, 8 and 64 connections, in interleaved rounds
(c1, c8, c64, then again: three rounds by default), reporting each level's median round, so that
a slow spell of the machine does not land on one level only (non-2xx responses and socket errors
are counted and flagged); latency p50/p99 at one connection; time to first SSE event and total
stream time (p50 over sequential requests from a lean socket client); and the peak RSS (VmHWM,
summed over the server's process tree). Added latency is the target's p50 minus the direct p50.
The connections each target opened to nginx during its wrk runs are counted (from nginx's
``stub_status``): a gateway that reuses its upstream connections opens about as many as
the client holds. A full run takes about four minutes with the default 3 rounds of 4 s.

Targets: >= 25x LiteLLM throughput at c64, our throughput at c64 >= at c8, < 0.7 ms added p50
latency at c1, < 0.7 ms added time to first token, peak RSS < 120 MB; the ratios to Portkey are
reported beside those to LiteLLM. Exit status 1 when a target is missed, 2 when the run failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
UMP = ROOT / ".venv" / "bin" / "ump-llm"
LITELLM_VENV = ROOT / "bench" / ".venv-litellm"
LITELLM_MARKER = LITELLM_VENV / ".installed"
PORTKEY_PACKAGE = "@portkey-ai/gateway@1.15.2"
PORTKEY_DIR = ROOT / "bench" / ".portkey-gateway"
PORTKEY_SERVER = PORTKEY_DIR / "node_modules" / "@portkey-ai" / "gateway" / "build"
PORTKEY_SERVER = PORTKEY_SERVER / "start-server.js"
PORTKEY_MARKER = PORTKEY_DIR / ".installed"
# Node's net.Server.listen(port) binds every address; the bench serves loopback only.
LOOPBACK_PRELOAD = """import net from "node:net";
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (port, host, ...rest) {
  if (typeof port === "number") return listen.call(this, port, "127.0.0.1", ...rest);
  return listen.call(this, port, host, ...rest);
};
"""

SERVER_CPU = "0"  # the server under test
LOAD_CPU = "1"  # nginx, wrk and the streaming client
CONCURRENCIES = (1, 8, 64)
HOST = "127.0.0.1"  # loopback only, always
MASTER_KEY = "sk-bench-master"
CHAT_PATH = "/v1/chat/completions"

REQUEST = {"model": "bench", "messages": [{"role": "user", "content": "Hello"}]}
REPLY_TEXT = "Hello! How can I help?"
USAGE = {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16}

TARGET_C64_RATIO = 25.0
TARGET_ADDED_MS = 0.7
TARGET_RSS_MB = 120.0
TARGET_AUTH_MS = 0.05  # what checking a token may add to p50 at c1, over the open mode
AUTH_ROUNDS = 5


# --------------------------------------------------------------------------- fake upstream


def _compact(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


def fake_completion() -> str:
    return _compact(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "fake-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": REPLY_TEXT},
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
        }
    )


def fake_stream() -> str:
    def chunk(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> str:
        body: dict[str, Any] = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "fake-model",
            "choices": choices,
        }
        if usage is not None:
            body["usage"] = usage
        return f"data: {_compact(body)}\n\n"

    def delta(d: dict[str, str], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": d, "finish_reason": finish}]

    events = [chunk(delta({"role": "assistant", "content": ""}))]
    events += [chunk(delta({"content": part})) for part in ("Hello", "! How can", " I help?")]
    events.append(chunk(delta({}, "stop")))
    events.append(chunk([], USAGE))
    events.append("data: [DONE]\n\n")
    return "".join(events)


def _nginx_string(text: str) -> str:
    """``text`` as a single-quoted nginx string (``\\n`` is an escape nginx understands)."""
    assert not any(c in text for c in "'\\$"), "keep quotes, backslashes and $ out of replies"
    return "'" + text.replace("\n", "\\n") + "'"


def nginx_conf(prefix: Path, port: int) -> str:
    models = _compact({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
    temps = "\n".join(
        f"    {kind}_temp_path {prefix / 'temp' / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""daemon off;
worker_processes 1;
error_log stderr warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_buffer_size 64k;  # the body must stay in memory for $request_body
{temps}
    map $request_body $fake_reply {{
        "~\\"stream\\"\\s*:\\s*true" /_fake/stream;
        default /_fake/json;
    }}
    server {{
        listen {HOST}:{port} backlog=4096;
        root {prefix}/empty;
        location = {CHAT_PATH} {{
            # `return` runs before nginx reads a body; the mirror module reads it first, the
            # static handler then fails (403, 404 or 405) and error_page routes on the body.
            mirror /_fake/discard;
            mirror_request_body on;
            log_not_found off;
            error_page 403 404 405 = $fake_reply;
        }}
        location = /_fake/discard {{ internal; return 204; }}
        location = /_fake/json {{
            internal;
            default_type application/json;
            return 200 {_nginx_string(fake_completion())};
        }}
        location = /_fake/stream {{
            internal;
            default_type text/event-stream;
            add_header Cache-Control no-cache;
            return 200 {_nginx_string(fake_stream())};
        }}
        location = /_fake/status {{ stub_status; }}  # connections accepted, for churn
        location = /v1/models {{
            default_type application/json;
            return 200 {_nginx_string(models)};
        }}
    }}
}}
"""


def litellm_config(upstream_port: int) -> str:
    """JSON is YAML, so no YAML writer is needed."""
    config = {
        "model_list": [
            {
                "model_name": "bench",
                "litellm_params": {
                    "model": "openai/fake-model",
                    "api_base": f"http://{HOST}:{upstream_port}/v1",
                    "api_key": "sk-fake",
                    # without prices LiteLLM runs a cost diagnostic on every answer
                    "input_cost_per_token": 0.000001,
                    "output_cost_per_token": 0.000002,
                },
            }
        ],
        "general_settings": {"master_key": MASTER_KEY},
    }
    return json.dumps(config, indent=2) + "\n"


def wrk_lua(headers: Mapping[str, str]) -> str:
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(_compact(REQUEST))}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    fields = ["requests", "duration", "status", "connect", "read", "write", "timeout"]
    fields += ["p50", "p99"]
    fmt = "WRK_RESULT " + " ".join(f"{name}=%.1f" for name in fields) + "\\n"
    lines += [
        "done = function(summary, latency, requests)",
        "  local e = summary.errors",
        f'  io.write(string.format("{fmt}", summary.requests, summary.duration,',
        "    e.status, e.connect, e.read, e.write, e.timeout,",
        "    latency:percentile(50), latency:percentile(99)))",
        "end",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- processes


class Children:
    """Every process this script starts, each in its own process group, stopped on exit."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(
        self,
        cmd: list[str],
        *,
        cpu: str,
        log: Path | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        capture: bool = False,
    ) -> subprocess.Popen[bytes]:
        out: IO[bytes] | int
        out = subprocess.PIPE if capture else subprocess.DEVNULL
        # no signal between starting a process and recording it (it would be left behind);
        # the child gets the usual mask back before it runs anything
        deferred = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, deferred)

        def unblock() -> None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

        with contextlib.ExitStack() as stack:
            stack.callback(signal.pthread_sigmask, signal.SIG_SETMASK, mask)
            if log is not None:
                out = stack.enter_context(log.open("ab"))
            proc = subprocess.Popen(
                ["taskset", "-c", cpu, *cmd],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=None if env is None else dict(env),
                cwd=cwd,
                start_new_session=True,
                preexec_fn=unblock,
            )
            self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # workers the leader left behind (same process group, which is ours)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.stdout is not None:
            proc.stdout.close()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc, timeout=5.0)


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    print(f"\nstopped by signal {signum}; cleaning up", file=sys.stderr)
    raise SystemExit(128 + signum)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy


def http(
    method: str,
    url: str,
    body: object = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, str, bytes]:
    """(status, content type, body); status 0 when nothing answered."""
    if not url.startswith(f"http://{HOST}:"):
        raise ValueError(f"loopback only: {url}")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 (checked just above)
        url, data=data, method=method, headers=dict(headers or {})
    )
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, response.headers.get_content_type(), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get_content_type(), exc.read()
    except (OSError, urllib.error.URLError):
        return 0, "", b""


def wait_ready(
    proc: subprocess.Popen[bytes],
    url: str,
    log: Path,
    timeout: float,
    headers: Mapping[str, str] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}:\n{log_tail(log)}")
        if http("GET", url, headers=headers, timeout=2.0)[0] == 200:
            return
        time.sleep(0.2)
    raise RuntimeError(f"no answer from {url} after {timeout:.0f} s:\n{log_tail(log)}")


def cpu_busy(seconds: float = 0.5) -> dict[str, float]:
    """Share of time each CPU was busy over ``seconds`` (from /proc/stat)."""

    def sample() -> dict[str, tuple[int, int]]:
        out = {}
        for line in Path("/proc/stat").read_text().splitlines():
            name, *fields = line.split()
            if name.startswith("cpu") and name != "cpu":
                ticks = [int(x) for x in fields]
                out[name[3:]] = (sum(ticks), ticks[3] + ticks[4])  # total, idle + iowait
        return out

    before = sample()
    time.sleep(seconds)
    after = sample()
    busy = {}
    for cpu, (total, idle) in after.items():
        d_total = total - before[cpu][0]
        busy[cpu] = 1 - (idle - before[cpu][1]) / d_total if d_total else 0.0
    return busy


def warn_if_busy(when: str) -> None:
    """Other work on the pinned CPUs skews every number: say so."""
    busy = cpu_busy()
    hot = {cpu: share for cpu, share in busy.items() if cpu in (SERVER_CPU, LOAD_CPU)}
    if any(share > 0.15 for share in hot.values()):
        shown = ", ".join(f"CPU {cpu} {share:.0%}" for cpu, share in sorted(hot.items()))
        print(f"  warning: other processes keep the CPUs busy {when} ({shown}); noisy numbers")


def process_tree(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += parents.get(pid, [])
    return tree


def peak_rss_mb(root: int) -> float:
    """VmHWM (peak resident set) summed over ``root`` and its descendants, in MB."""
    total_kb = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


# --------------------------------------------------------------------------- setup


def ensure_debian_tools() -> None:
    missing = [tool for tool in ("nginx", "wrk") if shutil.which(tool) is None]
    if not missing:
        return
    print(f"installing {' '.join(missing)} (apt-get)", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", *missing]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True)
        subprocess.run(install, env=env, check=True)
    still = [tool for tool in missing if shutil.which(tool) is None]
    if still:
        raise RuntimeError(f"not on PATH after installing: {', '.join(still)}")


def ensure_litellm() -> None:
    if LITELLM_MARKER.exists() and (LITELLM_VENV / "bin" / "litellm").exists():
        return
    print("installing LiteLLM proxy into bench/.venv-litellm (once; a few minutes)", flush=True)
    python = shutil.which("python3") or sys.executable
    subprocess.run([python, "-m", "venv", str(LITELLM_VENV)], check=True)
    pip = [str(LITELLM_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "litellm[proxy]"], check=True)
    LITELLM_MARKER.touch()


def ensure_portkey() -> None:
    if PORTKEY_MARKER.exists() and PORTKEY_SERVER.exists():
        return
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise RuntimeError("Portkey's gateway needs node and npm on PATH")
    print(f"installing {PORTKEY_PACKAGE} into bench/.portkey-gateway (once)", flush=True)
    PORTKEY_DIR.mkdir(parents=True, exist_ok=True)
    npm = ["npm", "install", "--prefix", str(PORTKEY_DIR), "--ignore-scripts", "--no-audit"]
    subprocess.run([*npm, "--no-fund", PORTKEY_PACKAGE], check=True)
    PORTKEY_MARKER.touch()


def command_output(cmd: list[str]) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return (
        (result.stdout or result.stderr).strip().splitlines()[0] if result.returncode == 0 else "?"
    )


# --------------------------------------------------------------------------- measuring


@dataclass
class WrkRun:
    conns: int
    rps: float  # successful (2xx/3xx) responses per second
    requests: int
    errors: int  # non-2xx/3xx responses plus socket errors
    p50_ms: float
    p99_ms: float
    upstream_conns: int | None = None  # connections opened to nginx during the run


@dataclass
class StreamStats:
    ttft_p50_ms: float
    total_p50_ms: float
    ok: int
    failed: int


@dataclass
class Target:
    name: str
    base: str  # http://127.0.0.1:port
    headers: dict[str, str]
    version: str = ""
    runs: dict[int, WrkRun] = field(default_factory=dict)
    stream: StreamStats | None = None
    rss_mb: float | None = None
    problems: list[str] = field(default_factory=list)
    streams: bool = True  # False: measured on plain chat only

    @property
    def url(self) -> str:
        return self.base + CHAT_PATH


def nginx_accepts(nginx: Target) -> int | None:
    """Connections nginx has accepted so far (its ``stub_status``), None when it cannot say."""
    status, _, raw = http("GET", nginx.base + "/_fake/status")
    try:
        return int(raw.decode().splitlines()[2].split()[0]) if status == 200 else None
    except (IndexError, ValueError):
        return None


def run_wrk(children: Children, target: Target, lua: Path, conns: int, seconds: float) -> WrkRun:
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(lua)]
    proc = children.spawn([*cmd, target.url], cpu=LOAD_CPU, capture=True)
    try:
        out, _ = proc.communicate(timeout=seconds + 60)
    finally:
        children.stop(proc)
    text = out.decode(errors="replace")
    line = next((x for x in text.splitlines() if x.startswith("WRK_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{text}")
    values = {k: float(v) for k, v in (pair.split("=") for pair in line.split()[1:])}
    errors = sum(int(values[k]) for k in ("status", "connect", "read", "write", "timeout"))
    ok = int(values["requests"] - values["status"])
    return WrkRun(
        conns=conns,
        rps=ok / (values["duration"] / 1e6),
        requests=int(values["requests"]),
        errors=errors,
        p50_ms=values["p50"] / 1000,
        p99_ms=values["p99"] / 1000,
    )


def median_run(runs: list[WrkRun]) -> WrkRun:
    """One level's rounds as one run: the median of each figure, errors and requests summed,
    the most upstream connections any round opened."""
    opened = [r.upstream_conns for r in runs if r.upstream_conns is not None]
    return WrkRun(
        conns=runs[0].conns,
        rps=statistics.median(r.rps for r in runs),
        requests=sum(r.requests for r in runs),
        errors=sum(r.errors for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        upstream_conns=max(opened) if opened else None,
    )


def sse_text(raw: bytes) -> tuple[str, bool, bool]:
    """(content, saw [DONE], saw usage) of an SSE chat stream."""
    text, done, usage = "", False, False
    for line in raw.decode(errors="replace").splitlines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
            continue
        event = json.loads(data)
        usage = usage or bool(event.get("usage"))
        for choice in event.get("choices") or []:
            text += (choice.get("delta") or {}).get("content") or ""
    return text, done, usage


def check_target(target: Target) -> str | None:
    """None when the target answers both forms correctly; a fatal reason otherwise.

    Lesser differences (content type, no usage, no ``[DONE]``) go to ``target.problems``.
    """
    status, ctype, raw = http("POST", target.url, REQUEST, target.headers)
    if status != 200:
        hint = " (endpoint missing?)" if status in (404, 405) else ""
        return f"POST {CHAT_PATH} -> {status or 'no answer'}{hint}: {raw[:300]!r}"
    try:
        answer = json.loads(raw)
        content = answer["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return f"not a chat.completion: {raw[:300]!r}"
    if content != REPLY_TEXT:
        return f"unexpected content {content!r}"
    if ctype != "application/json":
        target.problems.append(f"JSON answer has Content-Type {ctype}")
    if not answer.get("usage"):
        target.problems.append("JSON answer has no usage")
    if not target.streams:
        return None

    # OpenAI sends the usage chunk only when asked; the timed streams do not ask
    asked = {**REQUEST, "stream": True, "stream_options": {"include_usage": True}}
    status, ctype, raw = http("POST", target.url, asked, target.headers)
    if status != 200:
        return f"POST {CHAT_PATH} stream -> {status or 'no answer'}: {raw[:300]!r}"
    try:
        text, done, usage = sse_text(raw)
    except (ValueError, AttributeError) as exc:
        return f"stream is not OpenAI SSE ({exc}): {raw[:300]!r}"
    if text != REPLY_TEXT:
        return f"stream content {text!r}, expected {REPLY_TEXT!r}"
    if ctype != "text/event-stream":
        target.problems.append(f"stream has Content-Type {ctype}")
    if not done:
        target.problems.append("stream has no data: [DONE]")
    if not usage:
        target.problems.append("stream has no usage chunk (include_usage was asked)")
    return None


class StreamClient:
    """A lean HTTP/1.1 client on one keep-alive socket: it sends a request in one write and
    notes when the first SSE ``data:`` line of the answer arrives and when the answer ends.

    It is written on a plain blocking socket on purpose: an aiohttp client spends about 0.25 ms
    of its own per request (measured against direct nginx), on the CPU nginx shares with it, and
    that cost showed up as "added" time to first event for every target behind a gateway."""

    def __init__(self, url: str, headers: Mapping[str, str]) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.address = (parsed.hostname or HOST, parsed.port or 80)
        body = _compact({**REQUEST, "stream": True}).encode()
        lines = [f"POST {parsed.path} HTTP/1.1", f"Host: {parsed.netloc}"]
        lines += ["Content-Type: application/json", "Accept: text/event-stream"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines += [f"Content-Length: {len(body)}", "", ""]
        self.request = "\r\n".join(lines).encode() + body
        self.sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def once(self) -> tuple[float, float | None, int]:
        """(total seconds, seconds to the first data line or None, status) of one stream."""
        if self.sock is None:
            self.sock = self._connect()
        sock = self.sock
        start = time.perf_counter()
        sock.sendall(self.request)
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += _recv(sock)
        head, _, body = buf.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        fields = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(b":") for line in head.split(b"\r\n")[1:])
        }
        first: float | None = None
        if b"data:" in body:
            first = time.perf_counter()
        if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
            payload = b""
            while True:  # one chunk at a time: size line, data, CRLF; a 0 size ends it
                while b"\r\n" not in body:
                    body += _recv(sock)
                size_line, _, body = body.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                while len(body) < size + 2:
                    body += _recv(sock)
                chunk, body = body[:size], body[size + 2 :]
                payload += chunk
                if first is None and b"data:" in payload:
                    first = time.perf_counter()
                if size == 0:
                    break
        else:
            length = int(fields.get(b"content-length", b"-1"))
            while length < 0 or len(body) < length:
                more = sock.recv(65536)
                if not more:
                    break  # no length: the answer ends with the connection
                body += more
                if first is None and b"data:" in body:
                    first = time.perf_counter()
        end = time.perf_counter()
        framed = b"content-length" in fields or b"transfer-encoding" in fields
        if fields.get(b"connection", b"").lower() == b"close" or not framed:
            sock.close()
            self.sock = None
        return end - start, None if first is None else first - start, status


def _recv(sock: socket.socket) -> bytes:
    data = sock.recv(65536)
    if not data:
        raise ConnectionError("the server closed the connection mid-answer")
    return data


def stream_client(url: str, requests: int, warmup: int, headers: Mapping[str, str]) -> str:
    """Sequential streaming requests on one keep-alive connection; a JSON summary (seconds)."""
    client = StreamClient(url, headers)
    ttft: list[float] = []
    total: list[float] = []
    failed = 0
    for i in range(warmup + requests):
        try:
            elapsed, first, status = client.once()
            good = status == 200 and first is not None
        except OSError:
            client.sock = None
            good, elapsed, first = False, 0.0, None
        if i < warmup:
            continue
        if not good or first is None:
            failed += 1
            continue
        ttft.append(first)
        total.append(elapsed)
    return json.dumps({"ttft": ttft, "total": total, "failed": failed})


def run_stream_client(children: Children, target: Target, requests: int) -> StreamStats:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--stream-client", target.url]
    cmd += ["--stream-requests", str(requests), "--client-headers", json.dumps(target.headers)]
    proc = children.spawn(cmd, cpu=LOAD_CPU, capture=True)
    try:
        out, _ = proc.communicate(timeout=300)
    finally:
        children.stop(proc)
    try:
        result = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise RuntimeError(f"streaming client failed:\n{out.decode(errors='replace')}") from exc
    ttft, total = result["ttft"], result["total"]
    return StreamStats(
        ttft_p50_ms=statistics.median(ttft) * 1000 if ttft else float("nan"),
        total_p50_ms=statistics.median(total) * 1000 if total else float("nan"),
        ok=len(ttft),
        failed=int(result["failed"]),
    )


def measure(
    children: Children,
    target: Target,
    server: subprocess.Popen[bytes],
    tmp: Path,
    args: argparse.Namespace,
    upstream: Target,
) -> None:
    """Check, warm up and measure one target; the caller starts and stops it."""
    warn_if_busy(f"before {target.name}")
    reason = check_target(target)
    if reason is not None:
        target.problems.insert(0, f"not measured: {reason}")
        print(f"  {target.name}: {reason}", flush=True)
        return
    lua = tmp / f"post-{target.name.replace(' ', '-')}.lua"
    lua.write_text(wrk_lua({"Content-Type": "application/json", **target.headers}))
    print(f"  {target.name}: warm-up", flush=True)
    run_wrk(children, target, lua, 8, min(3.0, args.duration))
    rounds: dict[int, list[WrkRun]] = {conns: [] for conns in CONCURRENCIES}
    for _ in range(args.rounds):  # interleaved: a slow spell of the machine hits every level
        for conns in CONCURRENCIES:
            before = nginx_accepts(upstream)
            run = run_wrk(children, target, lua, conns, args.duration)
            after = nginx_accepts(upstream)
            if before is not None and after is not None:
                run.upstream_conns = after - before - 1  # the status request itself
            rounds[conns].append(run)
    for conns, runs in rounds.items():
        run = target.runs[conns] = median_run(runs)
        flag = f"  <-- {run.errors} ERRORS" if run.errors else ""
        spread = ", ".join(f"{r.rps:.0f}" for r in runs)
        print(
            f"  {target.name}: c{conns:<3} {run.rps:9.0f} req/s  p50 {run.p50_ms:7.2f} ms"
            f"  p99 {run.p99_ms:7.2f} ms  (rounds: {spread}){flag}",
            flush=True,
        )
        if run.errors:
            target.problems.append(f"{run.errors} errors of {run.requests} at c{conns}")
    target.rss_mb = peak_rss_mb(server.pid)
    if not target.streams:
        print(f"  {target.name}: streaming not measured", flush=True)
        return
    stream = run_stream_client(children, target, args.stream_requests)
    target.stream = stream
    print(
        f"  {target.name}: stream TTFT p50 {stream.ttft_p50_ms:.2f} ms, "
        f"total p50 {stream.total_p50_ms:.2f} ms ({stream.ok} ok, {stream.failed} failed)",
        flush=True,
    )
    if stream.failed:
        target.problems.append(f"{stream.failed} failed streams")
    target.rss_mb = peak_rss_mb(server.pid)  # again: streaming may have raised the peak


# --------------------------------------------------------------------------- the targets


Started = tuple[Target, subprocess.Popen[bytes]]


def start_nginx(children: Children, tmp: Path) -> Started:
    prefix = tmp / "nginx"
    for sub in ("temp", "empty", "logs"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_conf(prefix, port))
    log = tmp / "nginx.log"
    cmd = ["nginx", "-e", "stderr", "-c", str(conf), "-p", str(prefix)]
    proc = children.spawn(cmd, cpu=LOAD_CPU, log=log)
    target = Target("direct nginx", f"http://{HOST}:{port}", {})
    wait_ready(proc, target.base + "/v1/models", log, 15)
    target.version = command_output(["nginx", "-v"]).replace("nginx version: ", "")
    return target, proc


def start_gateway(
    children: Children, tmp: Path, upstream: Target, *, token: bool = False
) -> Started:
    """Our server as ``make run`` starts it; with ``token``, an admin token exists, so every
    request carries it and is checked."""
    data = tmp / ("ump-token" if token else "ump")
    data.mkdir(parents=True)
    env = {**os.environ, "UMP_DATA_DIR": str(data)}
    db = f"sqlite+aiosqlite:///{data}/ump.db"
    add = [str(UMP), "connections", "add", "--name", "bench", "--type", "remote"]
    add += ["--base-url", upstream.base + "/v1", "--model", "fake-model", "--database-url", db]
    seeded = subprocess.run(add, env=env, capture_output=True, text=True, check=False)
    if seeded.returncode != 0:
        raise RuntimeError(f"seeding failed:\n{seeded.stdout}{seeded.stderr}")
    headers: dict[str, str] = {}
    if token:
        create = [str(UMP), "tokens", "create", "--name", "bench", "--role", "admin"]
        made = subprocess.run(
            [*create, "--database-url", db], env=env, capture_output=True, text=True, check=False
        )
        if made.returncode != 0:
            raise RuntimeError(f"token creation failed:\n{made.stderr}")
        headers = {"Authorization": f"Bearer {made.stdout.strip()}"}
    port = free_port()
    log = data / "gateway.log"
    serve = [str(UMP), "serve", "--host", HOST, "--port", str(port), "--database-url", db]
    # as `make run` starts it: default settings (log level, access log, health monitor)
    proc = children.spawn(serve, cpu=SERVER_CPU, log=log, env=env)
    name = "our gateway (token)" if token else "our gateway"
    target = Target(name, f"http://{HOST}:{port}", headers)
    wait_ready(proc, target.base + "/healthz", log, 60)
    target.version = command_output([str(UMP), "version"])
    return target, proc


def start_litellm(children: Children, tmp: Path, upstream: Target) -> Started:
    work = tmp / "litellm"
    work.mkdir()
    config = work / "config.yaml"
    config.write_text(litellm_config(int(upstream.base.rsplit(":", 1)[1])))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "LITELLM_MASTER_KEY")}
    env |= {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "WARNING"}
    port = free_port()
    log = tmp / "litellm.log"
    cmd = [str(LITELLM_VENV / "bin" / "litellm"), "--config", str(config), "--host", HOST]
    cmd += ["--port", str(port), "--num_workers", "1"]
    proc = children.spawn(cmd, cpu=SERVER_CPU, log=log, env=env, cwd=work)
    target = Target("LiteLLM", f"http://{HOST}:{port}", {"Authorization": f"Bearer {MASTER_KEY}"})
    wait_ready(proc, target.base + "/health/liveliness", log, 180)
    python = str(LITELLM_VENV / "bin" / "python")
    target.version = command_output(
        [python, "-c", "import importlib.metadata as m; print(m.version('litellm'))"]
    )
    return target, proc


def start_portkey(children: Children, tmp: Path, upstream: Target) -> Started:
    preload = tmp / "loopback.mjs"
    preload.write_text(LOOPBACK_PRELOAD)
    port = free_port()
    log = tmp / "portkey.log"
    env = {**os.environ, "NODE_ENV": "production"}
    cmd = ["node", "--import", str(preload), str(PORTKEY_SERVER), f"--port={port}", "--headless"]
    proc = children.spawn(cmd, cpu=SERVER_CPU, log=log, env=env, cwd=PORTKEY_DIR)
    headers = {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": upstream.base + "/v1",
        "Authorization": "Bearer sk-fake",
    }
    target = Target("Portkey", f"http://{HOST}:{port}", headers, streams=False)
    wait_ready(proc, target.base + "/", log, 60)
    package = PORTKEY_SERVER.parents[1] / "package.json"
    version = json.loads(package.read_text()).get("version", "?")
    target.version = f"{version} ({command_output(['node', '--version'])})"
    return target, proc


# --------------------------------------------------------------------------- report


def _num(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None or value != value else format(value, spec)


def _ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or theirs == 0 or ours != ours or theirs != theirs:
        return "-"
    return f"{ours / theirs:.3g}x"


def _added(target: Target | None, direct: Target, what: str) -> float | None:
    if target is None:
        return None
    if what == "p50":
        mine, base = target.runs.get(1), direct.runs.get(1)
        return None if mine is None or base is None else mine.p50_ms - base.p50_ms
    if target.stream is None or direct.stream is None:
        return None
    return target.stream.ttft_p50_ms - direct.stream.ttft_p50_ms


def report(
    direct: Target,
    ours: Target | None,
    peers: list[Target],
    auth: tuple[float, float] | None = None,
) -> list[str]:
    """Print the table and the targets; return the failed targets."""
    cols = [t for t in (direct, ours, *peers) if t is not None]
    ratio_to = [peer for peer in peers if ours is not None]
    header = ["", *(t.name for t in cols)] + [f"gateway/{peer.name}" for peer in ratio_to]
    rows: list[list[str]] = [header, ["version", *(t.version for t in cols)]]

    def row(label: str, values: list[float | None], spec: str = ".2f") -> None:
        line = [label, *(_num(v, spec) for v in values)]
        if ours is not None:
            mine = values[1]
            line += [_ratio(mine, values[cols.index(peer)]) for peer in ratio_to]
        rows.append(line)

    for conns in CONCURRENCIES:
        runs = [t.runs.get(conns) for t in cols]
        row(f"req/s c{conns}", [r.rps if r else None for r in runs], ".0f")
        for i, run in enumerate(runs, start=1):
            if run is not None and run.errors:
                rows[-1][i] += " (ERRORS)"

    def per_target(label: str, cell: Callable[[Target], str]) -> None:
        rows.append([label, *(cell(t) for t in cols)])

    per_target(
        "errors c1/c8/c64",
        lambda t: "/".join(str(t.runs[c].errors) if c in t.runs else "-" for c in CONCURRENCIES),
    )

    def opened(t: Target) -> str:
        counts = [t.runs[c].upstream_conns if c in t.runs else None for c in CONCURRENCIES]
        return "/".join("-" if n is None else str(n) for n in counts)

    per_target("nginx conns opened c1/c8/c64", opened)
    row("p50 c1 (ms)", [t.runs[1].p50_ms if 1 in t.runs else None for t in cols])
    row("p99 c1 (ms)", [t.runs[1].p99_ms if 1 in t.runs else None for t in cols])
    row("p99 c64 (ms)", [t.runs[64].p99_ms if 64 in t.runs else None for t in cols])
    row("added p50 c1 (ms)", [None if t is direct else _added(t, direct, "p50") for t in cols])
    row("stream TTFT p50 (ms)", [t.stream.ttft_p50_ms if t.stream else None for t in cols])
    row("added TTFT (ms)", [None if t is direct else _added(t, direct, "ttft") for t in cols])
    row("stream total p50 (ms)", [t.stream.total_p50_ms if t.stream else None for t in cols])
    row("peak RSS (MB)", [t.rss_mb for t in cols], ".1f")

    widths = [max(len(r[i]) if i < len(r) else 0 for r in rows) for i in range(len(header))]
    print()
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=False)
        ]
        print("  ".join(cells).rstrip())
    print("(ratios: throughput higher is better; latency and RSS lower is better)")
    for t in cols:
        if not t.streams:
            print(f"- {t.name}: plain chat only (its streaming fails on this runtime)")
        for problem in t.problems:
            print(f"! {t.name}: {problem}")

    failed: list[str] = []
    if ours is None:
        return failed
    print("\nTargets")
    if not ours.runs:
        print("  [FAIL] our gateway was not measured")
        failed.append("our gateway was not measured")

    def check(label: str, value: float | None, ok: bool, shown: str) -> None:
        verdict = "n/a " if value is None or value != value else ("PASS" if ok else "FAIL")
        print(f"  [{verdict}] {label}: {shown if verdict != 'n/a ' else '-'}")
        if verdict == "FAIL":
            failed.append(label)

    c8, c64 = ours.runs.get(8), ours.runs.get(64)
    litellm = next((peer for peer in peers if peer.name == "LiteLLM"), None)
    lite64 = litellm.runs.get(64) if litellm is not None else None
    ratio = c64.rps / lite64.rps if c64 and lite64 and lite64.rps else None
    check(
        f"throughput at c64 >= {TARGET_C64_RATIO:g}x LiteLLM",
        ratio,
        ratio is not None and ratio >= TARGET_C64_RATIO,
        f"{ratio:.1f}x" if ratio else "-",
    )
    scaling = c64.rps / c8.rps if c64 and c8 and c8.rps else None
    check(
        "throughput at c64 >= at c8",
        scaling,
        scaling is not None and scaling >= 1.0,
        f"{_num(c64.rps if c64 else None, '.0f')} vs {_num(c8.rps if c8 else None, '.0f')} req/s",
    )
    added = _added(ours, direct, "p50")
    check(
        f"added p50 latency at c1 < {TARGET_ADDED_MS} ms",
        added,
        added is not None and added < TARGET_ADDED_MS,
        f"{_num(added, '.3f')} ms",
    )
    ttft = _added(ours, direct, "ttft")
    check(
        f"added TTFT < {TARGET_ADDED_MS} ms",
        ttft,
        ttft is not None and ttft < TARGET_ADDED_MS,
        f"{_num(ttft, '.3f')} ms",
    )
    check(
        f"peak RSS < {TARGET_RSS_MB:g} MB",
        ours.rss_mb,
        ours.rss_mb is not None and ours.rss_mb < TARGET_RSS_MB,
        f"{_num(ours.rss_mb, '.1f')} MB",
    )
    auth_cost = auth[1] - auth[0] if auth is not None else None
    check(
        f"a token adds < {TARGET_AUTH_MS} ms to p50 at c1",
        auth_cost,
        auth_cost is not None and auth_cost < TARGET_AUTH_MS,
        f"{_num(auth_cost, '.3f')} ms ({_num(auth[0], '.3f')} open, {_num(auth[1], '.3f')} "
        "with a token)"
        if auth is not None
        else "-",
    )
    for peer in peers:
        theirs = peer.runs.get(64)
        if c64 and theirs and theirs.rps and peer is not litellm:
            print(f"  [info] throughput at c64 vs {peer.name}: {c64.rps / theirs.rps:.1f}x")
    return failed


def measure_auth_cost(
    children: Children, tmp: Path, args: argparse.Namespace, upstream: Target
) -> tuple[float, float] | None:
    """p50 at c1 of our gateway open and with a token, both up at once and measured in
    interleaved rounds (the machine's drift hits both alike): what checking a token costs."""
    print("auth cost: starting our gateway open and with a token", flush=True)
    started: list[Started] = []
    try:
        for token in (False, True):
            started.append(start_gateway(children, tmp / f"auth-{token}", upstream, token=token))
        p50s: dict[str, list[float]] = {}
        for target, _ in started:
            reason = check_target(target)
            if reason is not None:
                print(f"  {target.name}: {reason}", flush=True)
                return None
            lua = tmp / f"auth-{len(target.headers)}.lua"
            lua.write_text(wrk_lua({"Content-Type": "application/json", **target.headers}))
            run_wrk(children, target, lua, 8, min(3.0, args.duration))  # warm-up
            p50s[target.name] = []
        for _ in range(AUTH_ROUNDS):
            for target, _ in started:
                lua = tmp / f"auth-{len(target.headers)}.lua"
                p50s[target.name].append(run_wrk(children, target, lua, 1, args.duration).p50_ms)
    except (RuntimeError, OSError) as exc:
        print(f"  auth cost: not measured: {exc}", flush=True)
        return None
    finally:
        for _, proc in started:
            children.stop(proc)
    open_p50, token_p50 = (statistics.median(v) for v in p50s.values())
    for name, values in p50s.items():
        shown = ", ".join(f"{v:.3f}" for v in values)
        print(f"  {name}: p50 c1 {statistics.median(values):.3f} ms (rounds: {shown})")
    return open_p50, token_p50


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per wrk run")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of c1, c8, c64 (the median is reported)"
    )
    parser.add_argument(
        "--stream-requests", type=int, default=500, help="sequential streaming requests"
    )
    parser.add_argument("--skip-litellm", action="store_true", help="leave LiteLLM out")
    parser.add_argument("--skip-portkey", action="store_true", help="leave Portkey out")
    parser.add_argument("--only-direct", action="store_true", help="the nginx baseline only")
    # internal: the streaming client, run pinned to the load CPU by the main process
    parser.add_argument("--stream-client", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--client-headers", default="{}", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def measure_server(
    children: Children,
    tmp: Path,
    args: argparse.Namespace,
    name: str,
    start: Callable[[Children, Path, Target], Started],
    upstream: Target,
) -> Target:
    """Start one server on the server CPU, measure it, stop it (one under load at a time)."""
    print(f"{name}: starting", flush=True)
    try:
        target, proc = start(children, tmp, upstream)
    except (RuntimeError, OSError) as exc:
        print(f"  {name}: did not start: {exc}", flush=True)
        return Target(name, "", {}, problems=[f"not measured: did not start: {exc}"])
    try:
        print(f"  {name} {target.version} on {target.base}", flush=True)
        measure(children, target, proc, tmp, args, upstream)
    finally:
        children.stop(proc)
    return target


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.stream_client:
        headers = json.loads(args.client_headers)
        print(stream_client(args.stream_client, args.stream_requests, 20, headers))
        return 0
    if not {int(SERVER_CPU), int(LOAD_CPU)} <= os.sched_getaffinity(0):
        print(f"error: needs CPUs {SERVER_CPU} and {LOAD_CPU}", file=sys.stderr)
        return 2

    started = time.monotonic()
    ensure_debian_tools()
    peers: list[tuple[str, Callable[[Children, Path, Target], Started]]] = []
    if not (args.only_direct or args.skip_litellm):
        ensure_litellm()
        peers.append(("LiteLLM", start_litellm))
    if not (args.only_direct or args.skip_portkey):
        ensure_portkey()
        peers.append(("Portkey", start_portkey))

    children = Children()
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGHUP, _exit_on_signal)
    tmp = Path(tempfile.mkdtemp(prefix="ump-bench-gateway-"))
    ours: Target | None = None
    try:
        print(f"server under test on CPU {SERVER_CPU}; nginx, wrk and client on CPU {LOAD_CPU}")
        direct, nginx = start_nginx(children, tmp)  # stays up: it is everyone's upstream
        print(f"direct nginx {direct.version} on {direct.base}", flush=True)
        measure(children, direct, nginx, tmp, args, direct)
        auth = None
        if not args.only_direct:
            ours = measure_server(children, tmp, args, "our gateway", start_gateway, direct)
            auth = measure_auth_cost(children, tmp, args, direct)
        measured = [
            measure_server(children, tmp, args, name, start, direct) for name, start in peers
        ]
        failed = report(direct, ours, measured, auth)
        print(f"\ntotal time {time.monotonic() - started:.0f} s")
        return 1 if failed else 0
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        children.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
