"""FBK and IMP modules (docs/method.md §2.3, §2.5): a `scripted` backend (the task's own checker and
fixer) and an `llm` backend (any OpenAI-compatible endpoint through the `openai` client).

Backends never decide correctness: the editor (tripost.interaction) decides it from the gold answer and
only asks FBK *where* and *why* an attempt is wrong. The llm backend is therefore only called on
attempts that are not gold-correct (or whose content is invalid), with a "no-correct" prompt: its
reply must name an error step (docs/method.md §2.3).

LLM prompts are few-shot prompts of our own, built deterministically from the task itself
(task.generate -> task.corrupt -> task.feedback -> task.improve), in the original code's prompt formats:
  FBK: `... {attempt}\\nEarliest error step: (k)\\nError segment: "..."\\nError reason: ... [END]`
  IMP: `... {attempt}\\nFeedback: {fb}\\nUpdated Answer: Let's think step by step.[ info]\\n{steps before k}`
       -> the LLM continues from the wrong step k; the correct prefix is copied verbatim.
Replies are parsed strictly; an unparsable reply gives None and the editor drops the trajectory.

Every LLM request/response is cached on disk under a hash of the request (model + payload; never the
key or the URL), so a rerun makes no calls and yields identical data. Transient failures (429, 5xx,
timeouts, connection errors, malformed response bodies) are retried with exponential back-off
(tenacity); calls, cache hits, tokens and failures are counted in `LLMMetrics`.
The API key is read from the environment variable *named* in params (`api_key_env`); it is never
stored, logged or written anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tripost import formats
from tripost.formats import Feedback
from tripost.io import atomic_path, write_json

END = "[END]"

FBK_PREAMBLE = (
    "Each example below shows a question, an attempted step-by-step answer, and the earliest step of "
    "the attempt that contains an error: the wrong part of that step, quoted exactly, and the reason "
    "it is wrong.\n\n"
)
IMP_PREAMBLE = (
    "Each example below shows a question, an attempted step-by-step answer, feedback on its earliest "
    "error, and an updated answer that keeps the steps before the wrong one unchanged and correctly "
    "redoes the rest.\n\n"
)
CHAT_SYSTEM = (
    "You complete text documents. Continue the last example of the document exactly in the format of "
    "the previous examples. Write only the continuation, then stop with [END]."
)


class LLMError(RuntimeError):
    """The LLM endpoint failed for good (retries exhausted or a non-retryable error)."""


class MalformedResponse(Exception):
    """A 200 response without a usable body (garbage JSON, no choices): retried like a 5xx."""


# --------------------------------------------------------------------------------------------------
# metrics


@dataclass
class LLMMetrics:
    requests: int = 0  # FBK/IMP requests asked of the client (cached or not)
    cache_hits: int = 0
    calls: int = 0  # HTTP attempts actually sent
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    invalid_unicode_replies: int = 0  # replies holding lone surrogates (replaced by U+FFFD)
    failures: dict = field(default_factory=dict)  # error kind -> count (every failed HTTP attempt)
    unparsable: dict = field(default_factory=dict)  # "fbk"/"imp" -> replies that did not parse
    price_per_million: dict | None = None  # {"prompt": USD, "completion": USD} per million tokens, if known

    @property
    def cost(self) -> float | None:
        """USD spent on the calls made (cached replies cost nothing), when prices are set."""
        price = self.price_per_million or {}
        if price.get("prompt") is None and price.get("completion") is None:
            return None
        return round(self.prompt_tokens * float(price.get("prompt") or 0) / 1e6
                     + self.completion_tokens * float(price.get("completion") or 0) / 1e6, 6)

    def __post_init__(self):
        self._lock = threading.Lock()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def count(self, bucket: str, key: str) -> None:
        with self._lock:
            d = getattr(self, bucket)
            d[key] = d.get(key, 0) + 1

    def to_dict(self) -> dict:
        return {
            "requests": self.requests,
            "cache_hits": self.cache_hits,
            "invalid_unicode_replies": self.invalid_unicode_replies,
            "calls": self.calls,
            "retries": self.retries,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": self.cost,
            "failures": dict(sorted(self.failures.items())),
            "unparsable": dict(sorted(self.unparsable.items())),
        }


# --------------------------------------------------------------------------------------------------
# backends


class Backend:
    """FBK + IMP. `feedback` returns None when FBK fails (-> the editor drops the trajectory);
    `improve` returns the new attempt, or None when the reply is unusable."""

    name = "base"

    def __init__(self, task):
        self.task = task
        self.metrics = LLMMetrics()

    def feedback(self, question: str, attempt: str, *, gold_ok: bool, content_ok: bool) -> Feedback | None:
        raise NotImplementedError

    def improve(self, question: str, attempt: str, feedback: Feedback) -> str | None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class ScriptedBackend(Backend):
    """FBK = task.feedback, IMP = task.improve (docs/method.md §2.3). Any exception -> None (the original's
    "[ERROR]" -> drop)."""

    name = "scripted"

    def feedback(self, question, attempt, *, gold_ok, content_ok):
        self.metrics.add("requests")
        try:
            fb = self.task.feedback(question, attempt)
        except Exception:  # noqa: BLE001 - any checker failure is the original's "[ERROR]"
            self.metrics.count("unparsable", "fbk")
            return None
        return fb if isinstance(fb, Feedback) else None

    def improve(self, question, attempt, feedback):
        self.metrics.add("requests")
        try:
            new = self.task.improve(question, attempt, feedback)
        except Exception:  # noqa: BLE001
            self.metrics.count("unparsable", "imp")
            return None
        return new.strip() if isinstance(new, str) and new.strip() else None


class LLMBackend(Backend):
    """FBK/IMP through an OpenAI-compatible endpoint (docs/method.md §2.3, §2.5)."""

    name = "llm"

    def __init__(self, task, client: "LLMClient", *, fbk_temperature: float, imp_temperature: float,
                 n_shots: int, shot_seed: int):
        super().__init__(task)
        self.client = client
        self.metrics = client.metrics
        self.fbk_temperature = fbk_temperature
        self.imp_temperature = imp_temperature
        self.shots = fewshot_examples(task, n_shots, shot_seed)
        self.max_in_flight = client.max_in_flight  # trajectories edited concurrently (interaction)

    def feedback(self, question, attempt, *, gold_ok, content_ok):
        try:
            steps = formats.parse_steps(attempt)
        except ValueError:
            self.metrics.count("unparsable", "fbk")
            return None
        if gold_ok and content_ok:  # correctness comes from the gold answer, not from the LLM
            text = formats.correct_feedback_text(steps)
            return formats.parse_feedback(text)
        reply = self.client.complete(fbk_prompt(self.task, question, attempt, self.shots),
                                     temperature=self.fbk_temperature)
        fb = parse_fbk_reply(reply, steps)
        if fb is None:
            self.metrics.count("unparsable", "fbk")
        return fb

    def improve(self, question, attempt, feedback):
        try:
            steps = formats.parse_steps(attempt)
        except ValueError:
            self.metrics.count("unparsable", "imp")
            return None
        prefix = prefix_steps(steps, feedback)
        reply = self.client.complete(imp_prompt(self.task, question, attempt, feedback, prefix, self.shots),
                                     temperature=self.imp_temperature)
        new = parse_imp_reply(reply, prefix, feedback)
        if new is None:
            self.metrics.count("unparsable", "imp")
        return new

    @classmethod
    def from_config(cls, task, client: "LLMClient", llm: dict, **overrides) -> "LLMBackend":
        """The backend params' `feedback_backend.llm` settings describe (`overrides` win)."""
        cfg = {**llm, **overrides}
        return cls(task, client, fbk_temperature=float(cfg["fbk_temperature"]),
                   imp_temperature=float(cfg["imp_temperature"]), n_shots=int(cfg["n_shots"]),
                   shot_seed=int(cfg["shot_seed"]))

    def close(self):
        self.client.close()


def check_llm_key(params: dict, task_name: str) -> None:
    """Raise LLMError if the LLM backend is selected for `task_name` and its API key variable is unset.

    Stages call this before they load a model: a missing key fails in a second, not at the first
    uncached FBK call minutes into a run. It is required even when every reply may be cached
    (`LLMClient` alone would need it only at its first cache miss); any value serves a fully cached
    rerun or a local server without authentication.
    """
    from tripost.params import section

    cfg = section(params, "feedback_backend", task_name)
    if cfg["backend"] != "llm":
        return
    env = cfg["llm"]["api_key_env"]
    if not env or not os.environ.get(env):
        raise LLMError(f"environment variable {env} (feedback_backend.llm.api_key_env, the LLM API key) is not set; "
                       "a local server without authentication accepts any value, e.g. EMPTY")


_LETTERED_OPTION = re.compile(r"^\(([A-Z])\)\s*(.*)$")
# the options check's two verdicts (`The answer X is one of the options.`)
LISTED = "is one of the options"
NOT_LISTED = "is not one of the options"


def answer_is_listed(task, question: str, attempt: str) -> bool | None:
    """Whether the attempt's answer is one of the question's options (a lettered option counts by its
    letter, `(B)` or `B`, or its text); None when the question lists no options or the attempt states
    no answer."""
    if "\nOptions:\n" not in question:
        return None
    answer = task.parse_answer(attempt)
    if not answer:
        return None
    listed = set()
    for line in question.split("\nOptions:\n", 1)[1].splitlines():
        line = line.strip()
        if not line:
            continue
        listed.add(line)
        m = _LETTERED_OPTION.match(line)
        if m:
            listed.update({f"({m.group(1)})", m.group(1), m.group(2).rstrip(".")})
    return answer.strip() in listed


def options_check(task, question: str, attempt: str) -> str:
    """An opening sentence for FBK's feedback on a multiple-choice question: the attempt's answer restated
    and whether it is one of the question's options (`The answer 04/11/1907 is not one of the options.`).
    '' when the question lists no options or the attempt states no answer. The check is one the small
    model can learn by comparison, without recomputing its steps (docs/research.md, run 18)."""
    listed = answer_is_listed(task, question, attempt)
    if listed is None:
        return ""
    return f"The answer {task.parse_answer(attempt).strip()} {LISTED if listed else NOT_LISTED}."


def make_backend(task, params: dict, *, cache_dir: str | Path | None = None) -> Backend:
    """The backend params.yaml's `feedback_backend` section selects for `task` (per_task overrides);
    the LLM backend checks its key first (`check_llm_key`)."""
    from tripost.params import section

    cfg = section(params, "feedback_backend", task.name)
    kind = cfg["backend"]
    if kind == "scripted":
        return ScriptedBackend(task)
    if kind != "llm":
        raise ValueError(f"feedback_backend.backend must be 'scripted' or 'llm', got {kind!r}")
    check_llm_key(params, task.name)
    llm = cfg["llm"]
    client = LLMClient.from_config(llm, **({"cache_dir": cache_dir} if cache_dir else {}))
    return LLMBackend.from_config(task, client, llm)


# --------------------------------------------------------------------------------------------------
# prompts and strict parsers


@dataclass(frozen=True)
class Shot:
    question: str
    attempt: str
    feedback: Feedback
    improved: str


def fewshot_examples(task, n: int, seed: int) -> list[Shot]:
    """`n` few-shot demonstrations of our own, built from the task (gold -> corrupt -> FBK -> IMP)."""
    if n <= 0:
        return []
    rng = random.Random(f"fewshot/{task.name}/{seed}")
    shots: list[Shot] = []
    examples = task.generate(n * 8, "seen", seed=seed)
    rng.shuffle(examples)
    for ex in examples:
        try:
            attempt, _ = task.corrupt(ex.question, ex.rationale, rng)
            fb = task.feedback(ex.question, attempt)
            if fb.is_correct:
                continue
            improved = task.improve(ex.question, attempt, fb)
        except Exception:  # noqa: BLE001 - a task that cannot demonstrate on this item: try the next
            continue
        shots.append(Shot(ex.question, attempt, fb, improved))
        if len(shots) == n:
            break
    if len(shots) < n:
        raise RuntimeError(f"could only build {len(shots)} of {n} few-shot examples for {task.name}")
    return shots


def _qa_head(task, question: str) -> str:
    return task.prompt(question)


def fbk_block(task, question: str, attempt: str, fb: Feedback | None = None) -> str:
    head = f"{_qa_head(task, question)}\n{attempt}\nEarliest error step:"
    if fb is None:
        return head
    reason = fb.reason.rstrip(".")
    return f'{head} ({fb.step})\nError segment: "{fb.segment}"\nError reason: {reason}. {END}'


def fbk_prompt(task, question: str, attempt: str, shots: list[Shot]) -> str:
    blocks = [fbk_block(task, s.question, s.attempt, s.feedback) for s in shots]
    blocks.append(fbk_block(task, question, attempt))
    return FBK_PREAMBLE + "\n\n".join(blocks)


def prefix_steps(steps: list[formats.Step], feedback: Feedback) -> list[formats.Step]:
    """The steps before the wrong one (all but the final response if the final response is wrong)."""
    labels = [s.label for s in steps]
    if feedback.step not in labels:
        raise ValueError(f"feedback step {feedback.step!r} not in the attempt")
    return steps[: labels.index(feedback.step)]


def imp_block(task, question, attempt, fb: Feedback, prefix: list[formats.Step], improved: str | None = None):
    header = formats.answer_header(task.info, updated=True)
    head = f"{_qa_head(task, question)}\n{attempt}\nFeedback: {fb.text}\n{header}\n"
    if improved is None:
        return head + "".join(s.line + "\n" for s in prefix)
    return f"{head}{improved} {END}"


def imp_prompt(task, question, attempt, feedback: Feedback, prefix, shots: list[Shot]) -> str:
    blocks = [imp_block(task, s.question, s.attempt, s.feedback, [], s.improved) for s in shots]
    blocks.append(imp_block(task, question, attempt, feedback, prefix))
    return IMP_PREAMBLE + "\n\n".join(blocks)


_SENTENCE_STARTERS = {"a", "an", "the", "this", "that", "these", "those", "there", "it", "its", "in", "on", "at",
                      "since", "because", "according", "we", "you", "your", "they", "step", "after", "before",
                      "from", "for", "if", "when", "as", "by", "to", "with", "one", "each", "all", "not", "no"}

_FBK_REPLY_RE = re.compile(
    r'^\((\d+(?:\.\d+)*|Final response)\)[ \t]*\n[ \t]*Error segment:[ \t]*"(.+)"[ \t]*\n'
    r"[ \t]*Error reason:[ \t]*(\S.*?)[ \t]*$"
)


def parse_fbk_reply(reply: str, steps: list[formats.Step]) -> Feedback | None:
    """Strict parse of an FBK reply into an error Feedback on `steps`; None if anything is off."""
    text = reply.split(END)[0].strip()
    if text.startswith("Earliest error step:"):
        text = text[len("Earliest error step:") :].strip()
    m = _FBK_REPLY_RE.match(text)
    if not m:
        return None
    label, segment, reason = m.group(1), m.group(2).strip(), m.group(3).strip()
    by_label = {s.label: s for s in steps}
    if label not in by_label or not segment or segment not in by_label[label].text:
        return None
    reason = reason.rstrip(".").strip()
    if not reason:
        return None
    first = reason.split(" ", 1)[0]
    if first.lower() in _SENTENCE_STARTERS:  # "This is because There is ..." -> "there is"; keep names
        reason = reason[0].lower() + reason[1:]
    fb = formats.parse_feedback(formats.error_feedback_text(steps, label, segment, reason))
    if fb is None or fb.is_correct or fb.step != label:
        return None
    return fb


_HALLUCINATED = ("Q:", "Feedback:", "Updated Answer:", "Answer:", "Options:", "List:", END, "Earliest error")


def parse_imp_reply(reply: str, prefix: list[formats.Step], feedback: Feedback) -> str | None:
    """New attempt = prefix (verbatim) + the reply's steps from the wrong step on; None if unparsable.

    The reply is cut at a hallucinated header (Q:/Feedback:/Updated Answer:/...) or a blank line after
    the steps; any other non-step line makes it unparsable. A reply that restates the prefix first
    (chat models do) has that restatement removed; its first new step must be the wrong step's label.
    """
    text = reply.split(END)[0]
    body: list[formats.Step] = []
    for line in text.strip("\n").split("\n"):
        s = line.strip()
        if not s:
            if body:
                break
            continue
        if s.startswith(_HALLUCINATED):
            break
        step = formats.parse_step(s)
        if step is None:
            return None
        body.append(step)
    if not body:
        return None
    if len(body) >= len(prefix) and prefix and [st.line for st in body[: len(prefix)]] == [p.line for p in prefix]:
        body = body[len(prefix) :]
    if not body or body[0].label != feedback.step:
        return None
    return formats.join_steps(list(prefix) + body)


# --------------------------------------------------------------------------------------------------
# the OpenAI-compatible client: cache, retries, metrics


def request_key(request: dict) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class LLMClient:
    """One completion at a time through `openai`, with a disk cache and tenacity retries."""

    def __init__(self, *, base_url: str, model: str, api_key_env: str, api: str, max_tokens: int,
                 timeout: float, max_retries: int, backoff_initial: float, backoff_max: float,
                 cache_dir: str | Path, max_in_flight: int, requests_per_minute: float | None,
                 price_per_million: dict | None, stop: tuple[str, ...] = (END,)):
        if api not in ("chat", "completions"):
            raise ValueError(f"api must be 'chat' or 'completions', got {api!r}")
        self.base_url = base_url
        self.model = model
        self.api = api
        self.api_key_env = api_key_env
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.cache_dir = Path(cache_dir)
        self.stop = list(stop)
        self.metrics = LLMMetrics(price_per_million=dict(price_per_million) if price_per_million else None)
        self.max_in_flight = max(int(max_in_flight), 1)
        self.requests_per_minute = requests_per_minute
        self._client = None
        self._client_lock = threading.Lock()
        self._pace_lock = threading.Lock()
        self._next_slot = 0.0

    SETTINGS = ("base_url", "model", "api_key_env", "api", "max_tokens", "timeout", "max_retries",
                "backoff_initial", "backoff_max", "cache_dir", "max_in_flight", "requests_per_minute",
                "price_per_million")

    @classmethod
    def from_config(cls, llm: dict, **overrides) -> "LLMClient":
        """The client params' `feedback_backend.llm` settings describe (`overrides` win: a test's
        server, a stage's cache folder)."""
        cfg = {**llm, **overrides}
        return cls(**{k: cfg[k] for k in cls.SETTINGS})

    # the client is built on the first cache miss: a fully cached rerun needs no key and no server
    def _openai(self):
        with self._client_lock:  # one client, shared by every thread (the openai client is thread-safe)
            if self._client is None:
                import openai

                key = os.environ.get(self.api_key_env)
                if not key:
                    raise LLMError(f"environment variable {self.api_key_env} (the LLM API key) is not set")
                self._client = openai.OpenAI(base_url=self.base_url, api_key=key, timeout=self.timeout,
                                             max_retries=0)
            return self._client

    def _pace(self) -> None:
        """Space requests so that at most `requests_per_minute` start in any minute (all threads)."""
        if not self.requests_per_minute:
            return
        with self._pace_lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + 60.0 / float(self.requests_per_minute)
        if slot > now:
            time.sleep(slot - now)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _request(self, prompt: str, temperature: float) -> dict:
        req = {"api": self.api, "model": self.model, "temperature": temperature,
               "max_tokens": self.max_tokens, "stop": self.stop}
        if self.api == "chat":
            req["messages"] = [{"role": "system", "content": CHAT_SYSTEM}, {"role": "user", "content": prompt}]
        else:
            req["prompt"] = prompt
        return req

    def _cache_path(self, key: str) -> Path:
        return self.cache_dir / key[:2] / f"{key}.json"

    def complete(self, prompt: str, *, temperature: float) -> str:
        req = self._request(prompt, temperature)
        key = request_key(req)
        path = self._cache_path(key)
        self.metrics.add("requests")
        if path.exists():
            try:
                cached = json.loads(path.read_text())
                self.metrics.add("cache_hits")
                return cached["response"]["text"]
            except (json.JSONDecodeError, KeyError):
                pass  # a damaged entry: ask again
        text, usage = self._call_with_retries(req)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps({"key": key, "request": req, "response": {"text": text, "usage": usage}},
                                      ensure_ascii=False))
        return text

    def _call_with_retries(self, req: dict) -> tuple[str, dict]:
        import openai
        import tenacity

        def retryable(exc: BaseException) -> bool:
            if isinstance(exc, (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError,
                                openai.APIConnectionError, openai.APIResponseValidationError,
                                MalformedResponse, json.JSONDecodeError)):
                return True
            return isinstance(exc, openai.APIStatusError) and (exc.status_code >= 500 or exc.status_code in (408, 409))

        def before_sleep(state) -> None:
            self.metrics.add("retries")

        backoff = tenacity.wait_exponential(multiplier=self.backoff_initial, max=self.backoff_max)

        def wait(state) -> float:
            """Exponential back-off, or longer when the endpoint says so (Retry-After on 429/503)."""
            return max(backoff(state), retry_after(state.outcome.exception()) or 0.0)

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(retryable),
            wait=wait,
            stop=tenacity.stop_after_attempt(self.max_retries + 1),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            return retrying(self._call_once, req)
        except Exception as exc:  # noqa: BLE001
            msg = _safe(exc, os.environ.get(self.api_key_env))
            n = retrying.statistics.get("attempt_number", 0)  # tenacity counts the attempts of this request
            tries = "1 attempt, not retried" if n == 1 else f"after {n} attempts"
            raise LLMError(f"LLM request to {self.base_url} failed ({tries}): {type(exc).__name__}: {msg}") from None

    def _call_once(self, req: dict) -> tuple[str, dict]:
        client = self._openai()
        self._pace()
        self.metrics.add("calls")
        try:
            if self.api == "chat":
                resp = client.chat.completions.create(model=req["model"], messages=req["messages"],
                                                      temperature=req["temperature"],
                                                      max_tokens=req["max_tokens"], stop=req["stop"])
                text = _chat_text(resp)
            else:
                resp = client.completions.create(model=req["model"], prompt=req["prompt"],
                                                 temperature=req["temperature"], max_tokens=req["max_tokens"],
                                                 stop=req["stop"])
                text = _completion_text(resp)
        except Exception as exc:
            self.metrics.count("failures", _kind(exc))
            raise
        clean = valid_unicode(text)
        if clean != text:  # a lone surrogate cannot be written to any UTF-8 file
            self.metrics.add("invalid_unicode_replies")
            text = clean
        usage = getattr(resp, "usage", None)
        pt = int(getattr(usage, "prompt_tokens", 0) or 0) if usage is not None else 0
        ct = int(getattr(usage, "completion_tokens", 0) or 0) if usage is not None else 0
        self.metrics.add("prompt_tokens", pt)
        self.metrics.add("completion_tokens", ct)
        return text, {"prompt_tokens": pt, "completion_tokens": ct}


def valid_unicode(text: str) -> str:
    """`text` with lone surrogates (valid JSON escapes, invalid Unicode) replaced by U+FFFD, so the reply
    can be cached and written like any other; the strict FBK/IMP parsers then judge it."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _chat_text(resp) -> str:
    if isinstance(resp, (str, bytes)):
        raise MalformedResponse("response body is not a JSON object")
    try:
        text = resp.choices[0].message.content
    except (AttributeError, IndexError, TypeError, KeyError) as e:
        raise MalformedResponse(f"no choices in the response: {type(e).__name__}") from None
    if not isinstance(text, str):
        raise MalformedResponse("choice without text content")
    return text


def _completion_text(resp) -> str:
    if isinstance(resp, (str, bytes)):
        raise MalformedResponse("response body is not a JSON object")
    try:
        text = resp.choices[0].text
    except (AttributeError, IndexError, TypeError, KeyError) as e:
        raise MalformedResponse(f"no choices in the response: {type(e).__name__}") from None
    if not isinstance(text, str):
        raise MalformedResponse("choice without text")
    return text


def retry_after(exc: BaseException | None) -> float | None:
    """Seconds from a response's `Retry-After` header (delta-seconds form), if the error carries one."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    try:
        value = float(headers.get("retry-after", ""))
    except (TypeError, ValueError):
        return None
    return min(max(value, 0.0), 600.0)


def _kind(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    if status is not None:
        return f"http_{status}"
    return type(exc).__name__


SECRET_FRAGMENT = 8  # any run of this many characters of the key is masked


def redact(text: str, secret: str | None = None) -> str:
    """`text` with the key removed: every piece of it of SECRET_FRAGMENT or more characters (an endpoint
    may echo part of it; the piece is masked as far as it runs), and anything shaped like a key
    (`sk-...`, `Bearer ...`, `api_key: ...`), whatever the key's format (OpenAI, Azure, vLLM)."""
    if secret:
        k = min(SECRET_FRAGMENT, len(secret))
        where = {}
        for j in range(len(secret) - k + 1):
            where.setdefault(secret[j:j + k], j)
        out, i = [], 0
        while i < len(text):
            j = where.get(text[i:i + k])
            if j is None:
                out.append(text[i])
                i += 1
                continue
            n = k  # extend the match along the key as far as the text follows it
            while i + n < len(text) and j + n < len(secret) and text[i + n] == secret[j + n]:
                n += 1
            out.append("***")
            i += n
        text = "".join(out)
    return re.sub(r"(sk-|Bearer |api[-_]key[\"']?\s*[:=]\s*[\"']?)[^\s\"',]+", r"\1***", text, flags=re.IGNORECASE)


def _safe(exc: BaseException, secret: str | None = None) -> str:
    """An error message, redacted first (see `redact`), then cut to 300 characters."""
    return redact(str(exc), secret)[:300]


def save_llm_metrics(path: str | Path, backend: Backend) -> None:
    write_json(path, {"backend": backend.name, **backend.metrics.to_dict()})
