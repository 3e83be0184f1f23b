"""A real OpenAI-compatible HTTP server on 127.0.0.1 (port 0) for tests of the llm FBK/IMP backend.

It answers `/v1/chat/completions` and `/v1/completions` from a task's scripted oracle, in the LLM text
formats of tripost.feedback (FBK: ` (k)\\nError segment: "..."\\nError reason: ...`; IMP: the steps from
the wrong one on), and can inject faults per request: HTTP 429 / 500 / 503, a reply slower than the
client's timeout, a garbage (non-JSON) body, a JSON body without choices, or a dropped connection.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tripost import formats

ANSWER = "Answer: Let's think step by step."


def _last_block(prompt: str) -> str:
    return prompt.split("\n\n")[-1]


def _question_and_rest(block: str) -> tuple[str, list[str]]:
    head, _, rest = block.partition("\n" + ANSWER)
    question = head[len("Q: "):] if head.startswith("Q: ") else head
    lines = rest.split("\n")[1:]  # drop the remainder of the Answer line (info text)
    return question, lines


def oracle_reply(task, prompt: str) -> str:
    """What a perfect LLM would answer, computed with the task's scripted FBK / IMP."""
    block = _last_block(prompt)
    question, lines = _question_and_rest(block)
    if block.rstrip().endswith("Earliest error step:"):
        attempt = "\n".join(lines[:-1])
        fb = task.feedback(question, attempt)
        if fb.is_correct:
            return " None\nError segment: \"\"\nError reason: the answer is correct."
        return f' ({fb.step})\nError segment: "{fb.segment}"\nError reason: {fb.reason}.'
    i_fb = next(i for i, ln in enumerate(lines) if ln.startswith("Feedback: "))
    attempt = "\n".join(lines[:i_fb])
    fb = formats.parse_feedback(lines[i_fb])
    prefix = [ln for ln in lines[i_fb + 2:] if ln.strip()]
    new = task.improve(question, attempt, fb).split("\n")
    assert new[: len(prefix)] == prefix, "the prompt's prefix is not the attempt's correct prefix"
    return "\n".join(new[len(prefix):])


class FakeOpenAI:
    """`with FakeOpenAI(task, api_key=..., faults=plan) as srv: srv.base_url`.

    `faults(n, prompt) -> kind | None` is called for the n-th request (0-based); kinds: "429", "500",
    "503", "timeout", "garbage", "nochoices", "drop", or "content:<text>" (a 200 reply with that text).
    """

    def __init__(self, task, *, api_key: str = "test-key", faults=None, slow_seconds: float = 1.0,
                 reply_fn=None, latency: float = 0.0):
        self.task = task
        self.api_key = api_key
        self.faults = faults or (lambda n, prompt: None)
        self.slow_seconds = slow_seconds
        self.reply_fn = reply_fn or oracle_reply
        self.latency = latency  # seconds every answered request takes (a remote LLM's response time)
        self.request_times: list[float] = []
        self.active = 0
        self.max_active = 0  # the most requests being answered at the same time
        self.requests = 0
        self.ok = 0
        self.seen_fault_kinds: list[str] = []
        self.auth_failures = 0
        self._lock = threading.Lock()
        self._server = None
        self._thread = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status: int, body: bytes, ctype: str = "application/json"):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):  # noqa: N802
                with outer._lock:
                    outer.active += 1
                    outer.max_active = max(outer.max_active, outer.active)
                try:
                    return self._post()
                finally:
                    with outer._lock:
                        outer.active -= 1

            def _post(self):
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                if self.headers.get("Authorization") != f"Bearer {outer.api_key}":
                    with outer._lock:
                        outer.auth_failures += 1
                    return self._send(401, json.dumps({"error": {"message": "bad key", "type": "auth"}}).encode())
                body = json.loads(raw)
                chat = self.path.endswith("/chat/completions")
                prompt = body["messages"][-1]["content"] if chat else body["prompt"]
                with outer._lock:
                    n = outer.requests
                    outer.requests += 1
                    outer.request_times.append(time.monotonic())
                kind = outer.faults(n, prompt)
                if kind:
                    with outer._lock:
                        outer.seen_fault_kinds.append(kind)
                if kind and kind.startswith("429ra:"):  # rate limited, with a Retry-After header
                    body = json.dumps({"error": {"message": "slow down", "type": "rate"}}).encode()
                    self.send_response(429)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Retry-After", kind[len("429ra:"):])
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return None
                if outer.latency:
                    time.sleep(outer.latency)
                if kind in ("429", "500", "503"):
                    return self._send(int(kind), json.dumps({"error": {"message": "injected", "type": "x"}}).encode())
                if kind == "timeout":
                    time.sleep(outer.slow_seconds)
                    try:
                        return self._send(503, b'{"error": {"message": "too late"}}')
                    except OSError:
                        return None
                if kind and kind.startswith("echo:"):  # a 400 whose message quotes the key after <pad> chars
                    token = self.headers.get("Authorization", "")[len("Bearer "):]
                    msg = "x" * int(kind[len("echo:"):]) + f" Incorrect API key provided: {token}."
                    return self._send(400, json.dumps({"error": {"message": msg, "type": "auth"}}).encode())
                if kind == "garbage":
                    return self._send(200, b"<html>\x00 not json {{{", "application/json")
                if kind == "nochoices":
                    return self._send(200, json.dumps({"id": "x", "object": "chat.completion"}).encode())
                if kind == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return None
                if kind and kind.startswith("content:"):
                    text = kind[len("content:"):]
                else:
                    text = outer.reply_fn(outer.task, prompt)
                for s in body.get("stop") or []:
                    text = text.split(s)[0]
                with outer._lock:
                    outer.ok += 1
                usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split()),
                         "total_tokens": len(prompt.split()) + len(text.split())}
                if chat:
                    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                    obj = "chat.completion"
                else:
                    choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
                    obj = "text_completion"
                resp = {"id": f"cmpl-{n}", "object": obj, "created": 0, "model": body.get("model", "x"),
                        "choices": [choice], "usage": usage}
                return self._send(200, json.dumps(resp).encode())

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def first_attempt_faults(kinds=("429", "500", "timeout", "garbage", "nochoices", "503", "drop")):
    """A plan that fails the first try of every distinct prompt, cycling through `kinds`."""
    tried: dict[str, int] = {}
    lock = threading.Lock()

    def plan(n, prompt):
        with lock:
            k = tried.get(prompt, 0)
            tried[prompt] = k + 1
            if k == 0:
                return kinds[len(tried) % len(kinds)]
        return None

    return plan
