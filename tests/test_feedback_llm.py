"""The llm FBK/IMP backend against a real OpenAI-compatible HTTP server on 127.0.0.1 (tests/fake_openai_server.py)
that answers from the scripted oracle: strict parsing, injected faults, cache, metrics."""

from __future__ import annotations

import json

import pytest

from _fake_task import AddTask, fake_model_generate
from _tiny import edit_limits, llm_backend, llm_client, repo_params
from fake_openai_server import FakeOpenAI, first_attempt_faults
from tripost import formats
from tripost.feedback import (LLMError, ScriptedBackend, fbk_prompt, fewshot_examples, imp_prompt,
                              make_backend, parse_fbk_reply, parse_imp_reply, prefix_steps)
from tripost.interaction import collect, edit

KEY_ENV = "TRIPOST_TEST_LLM_KEY"
KEY = "sk-test-8d1f0c2a-never-write-me"
A_W2 = "(1) Let's calculate 1 + 2 = 3.\n(2) Let's calculate 3 + 3 = 7.\n(Final response) So the answer is 7."
A_RIGHT = "(1) Let's calculate 1 + 2 = 3.\n(2) Let's calculate 3 + 3 = 6.\n(Final response) So the answer is 6."


@pytest.fixture
def task():
    return AddTask()


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


def client(srv, cache, api="chat", **kw):
    args = dict(base_url=srv.base_url, model="oracle", api_key_env=KEY_ENV, api=api, timeout=0.5, max_retries=4,
                backoff_initial=0.001, backoff_max=0.005, cache_dir=cache, max_in_flight=1)
    args.update(kw)
    return llm_client(**args)


# ------------------------------------------------------------------------------------- prompts, parsers


def test_prompts_use_the_spec_formats(task):
    shots = fewshot_examples(task, 2, seed=1234)
    assert len(shots) == 2 and all(not s.feedback.is_correct for s in shots)
    p = fbk_prompt(task, "1 + 2 + 3 =", A_W2, shots)
    assert p.endswith(f"Q: 1 + 2 + 3 =\nAnswer: Let's think step by step.\n{A_W2}\nEarliest error step:")
    assert p.count("Error segment: \"") == 2 and p.count("[END]") == 2
    fb = task.feedback("1 + 2 + 3 =", A_W2)
    p = imp_prompt(task, "1 + 2 + 3 =", A_W2, fb, prefix_steps(formats.parse_steps(A_W2), fb), shots)
    assert p.endswith(f"Feedback: {fb.text}\nUpdated Answer: Let's think step by step.\n(1) Let's calculate 1 + 2 = 3.\n")


def test_fbk_reply_parsed_strictly():
    steps = formats.parse_steps(A_W2)
    good = ' (2)\nError segment: "3 + 3 = 7"\nError reason: There is a calculation error. [END]'
    fb = parse_fbk_reply(good, steps)
    assert fb.step == "2" and fb.segment == "3 + 3 = 7" and fb.reason == "there is a calculation error"
    assert fb.text == ('Step (1) is correct. In step (2) the part " 3 + 3 = 7 " is incorrect. '
                       'This is because there is a calculation error.')
    assert parse_fbk_reply("Earliest error step: " + good.strip(), steps) == fb  # chat models repeat the header
    assert parse_fbk_reply(' (Final response)\nError segment: "the answer is 7."\nError reason: x.', steps).step == "Final response"
    for bad in [' (3)\nError segment: "3 + 3 = 7"\nError reason: x.',  # no such step
                ' (2)\nError segment: "1 + 2 = 4"\nError reason: x.',  # segment not in the step
                ' (2)\nError segment: "3 + 3 = 7"\nError reason: ',  # no reason
                ' (2)\nError segment: "3 + 3 = 7"\nError reason: x.\nAnd more text.',  # trailing junk
                ' None\nError segment: ""\nError reason: correct.', "I think step 2 is wrong.", ""]:
        assert parse_fbk_reply(bad, steps) is None, bad


def test_imp_reply_parsed_strictly():
    fb = formats.parse_feedback('Step (1) is correct. In step (2) the part " 3 + 3 = 7 " is incorrect. This is because x.')
    prefix = formats.parse_steps(A_W2)[:1]
    cont = "(2) Let's calculate 3 + 3 = 6.\n(Final response) So the answer is 6."
    assert parse_imp_reply(cont, prefix, fb) == A_RIGHT
    assert parse_imp_reply("\n" + cont + " [END]\nQ: next", prefix, fb) == A_RIGHT
    assert parse_imp_reply(A_RIGHT, prefix, fb) == A_RIGHT  # restated prefix removed
    assert parse_imp_reply(cont + "\nFeedback: fine", prefix, fb) == A_RIGHT  # hallucinated turn cut
    assert parse_imp_reply("(3) Let's calculate.\n(Final response) So the answer is 6.", prefix, fb) is None
    assert parse_imp_reply("Sure! Here is the fix:\n" + cont, prefix, fb) is None
    assert parse_imp_reply("", prefix, fb) is None


# ------------------------------------------------------------------------------------- the real server


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_edit_through_the_server_matches_scripted(task, tmp_path, api):
    with FakeOpenAI(task, api_key=KEY) as srv:
        backend = llm_backend(task, client(srv, tmp_path / "cache", api=api), n_shots=2)
        r = edit(task, backend, "1 + 2 + 3 =", "6", "\n" + A_W2, **edit_limits())
    s = edit(task, ScriptedBackend(task), "1 + 2 + 3 =", "6", "\n" + A_W2, **edit_limits())
    assert r.status == "edited" and (r.attempts, r.feedbacks) == (s.attempts, s.feedbacks)
    assert srv.requests == 2 and backend.metrics.calls == 2 and backend.metrics.prompt_tokens > 0


def _collect(task, backend, out, pool):
    params = repo_params({"seed": 0, "interaction": {"temperature": 1.0, "max_new_tokens": 64, "batch_size": 8,
                                                     "chunk_size": 8, "max_passes": 1, "max_data_length": 10**6,
                                                     "pool_limit": None}})
    return collect(task, pool, backend=backend, params=params, iteration=1, out_dir=out,
                   generate_fn=fake_model_generate(task, kinds=("gold", "wrong", "wrong2")), progress=False)


def test_faults_are_retried_and_the_data_equals_a_clean_run(task, tmp_path):
    pool = task.generate(8, "seen", seed=11)
    with FakeOpenAI(task, api_key=KEY) as srv:
        clean = _collect(task, llm_backend(task, client(srv, tmp_path / "c1"), n_shots=2), tmp_path / "clean", pool)
    assert clean["llm"]["failures"] == {} and clean["edited"] > 0
    kinds = ("429", "500", "timeout", "garbage", "nochoices", "503", "drop")
    with FakeOpenAI(task, api_key=KEY, faults=first_attempt_faults(kinds), slow_seconds=0.8) as srv:
        faulty = _collect(task, llm_backend(task, client(srv, tmp_path / "c2"), n_shots=2), tmp_path / "faulty", pool)
        assert set(srv.seen_fault_kinds) == set(kinds)
    assert (tmp_path / "faulty" / "trajectories.jsonl").read_bytes() == (tmp_path / "clean" / "trajectories.jsonl").read_bytes()
    llm = faulty["llm"]
    assert llm["retries"] == llm["calls"] - clean["llm"]["calls"] == sum(llm["failures"].values()) > 0
    assert {"http_429", "http_500", "http_503", "APITimeoutError", "JSONDecodeError", "MalformedResponse",
            "APIConnectionError"} == set(llm["failures"])
    # and the scripted backend produces the same trajectories (the server answers from the same oracle)
    _collect(task, ScriptedBackend(task), tmp_path / "scripted", pool)
    assert (tmp_path / "scripted" / "trajectories.jsonl").read_bytes() == (tmp_path / "clean" / "trajectories.jsonl").read_bytes()


def test_concurrent_editing_is_faster_and_byte_identical_with_faults(task, tmp_path):
    """16 trajectories in flight against a server answering in 0.3 s: the same files as a sequential run,
    faults included (retried per request), and the requests really overlap (the speed is measured by
    benchmarks/llm_concurrency.py)."""
    pool = task.generate(16, "seen", seed=13)
    with FakeOpenAI(task, api_key=KEY, latency=0.3) as srv:
        seq = _collect(task, llm_backend(task, client(srv, tmp_path / "c1"), n_shots=2), tmp_path / "seq", pool)
        assert srv.max_active == 1
    kinds = ("429", "500", "timeout", "503")
    with FakeOpenAI(task, api_key=KEY, latency=0.3, faults=first_attempt_faults(kinds), slow_seconds=0.8) as srv:
        conc = _collect(task, llm_backend(task, client(srv, tmp_path / "c2", max_in_flight=16, timeout=2.0,
                                                      backoff_max=0.01), n_shots=2), tmp_path / "conc", pool)
        overlap = srv.max_active
    assert seq["llm"]["calls"] > 10 and conc["edited"] == seq["edited"] > 0
    assert (tmp_path / "conc" / "trajectories.jsonl").read_bytes() == (tmp_path / "seq" / "trajectories.jsonl").read_bytes()
    assert overlap > 4  # requests of different trajectories were answered at the same time


def test_retry_after_is_honoured_and_requests_are_paced(task, tmp_path):
    import time

    with FakeOpenAI(task, api_key=KEY, faults=lambda n, p: "429ra:1" if n == 0 else "content:fine") as srv:
        c = client(srv, tmp_path / "cache", backoff_initial=0.001, backoff_max=0.005)
        t0 = time.monotonic()
        c.complete("hello", temperature=0.0)
        assert time.monotonic() - t0 >= 1.0 and srv.requests == 2  # waited as told, not 5 ms
    with FakeOpenAI(task, api_key=KEY, faults=lambda n, p: "content:fine") as srv:
        c = client(srv, tmp_path / "cache2", requests_per_minute=600, max_in_flight=8)  # one every 0.1 s
        from tripost.interaction import ordered_map

        list(ordered_map(lambda i: c.complete(f"q{i}", temperature=0.0), list(range(6)), 8))
        gaps = [b - a for a, b in zip(srv.request_times, srv.request_times[1:])]
        assert len(gaps) == 5 and min(gaps) > 0.08


def test_rerun_from_cache_makes_no_calls(task, tmp_path, monkeypatch):
    pool = task.generate(6, "seen", seed=12)
    with FakeOpenAI(task, api_key=KEY) as srv:
        first = _collect(task, llm_backend(task, client(srv, tmp_path / "cache"), n_shots=2), tmp_path / "a", pool)
        url = srv.base_url
    assert first["llm"]["calls"] > 0
    monkeypatch.delenv(KEY_ENV)  # a fully cached rerun needs neither the server nor the key
    c = llm_client(base_url=url, model="oracle", api_key_env=KEY_ENV, cache_dir=tmp_path / "cache", timeout=0.2,
                   max_retries=0, max_in_flight=1)
    again = _collect(task, llm_backend(task, c, n_shots=2), tmp_path / "b", pool)
    assert again["llm"]["calls"] == 0 and again["llm"]["cache_hits"] == first["llm"]["requests"]
    assert (tmp_path / "a" / "trajectories.jsonl").read_bytes() == (tmp_path / "b" / "trajectories.jsonl").read_bytes()


def test_garbage_content_drops_the_trajectory(task, tmp_path):
    with FakeOpenAI(task, api_key=KEY, faults=lambda n, p: "content:The answer looks fine to me!") as srv:
        backend = llm_backend(task, client(srv, tmp_path / "cache"), n_shots=2)
        r = edit(task, backend, "1 + 2 + 3 =", "6", "\n" + A_W2, **edit_limits())
    assert (r.status, r.filter) == ("dropped", "fbk_error") and backend.metrics.unparsable == {"fbk": 1}
    with FakeOpenAI(task, api_key=KEY, faults=lambda n, p: "content:Sure, here you go." if "Updated Answer" in p.split("\n\n")[-1] else None) as srv:
        backend = llm_backend(task, client(srv, tmp_path / "cache2"), n_shots=2)
        r = edit(task, backend, "1 + 2 + 3 =", "6", "\n" + A_W2, **edit_limits())
    assert (r.status, r.filter) == ("dropped", "imp_not_legit") and backend.metrics.unparsable == {"imp": 1}


def test_persistent_failure_raises_instead_of_dropping(task, tmp_path):
    with FakeOpenAI(task, api_key=KEY, faults=lambda n, p: "500") as srv:
        c = client(srv, tmp_path / "cache", max_retries=2)
        with pytest.raises(LLMError, match=rf"request to {srv.base_url} failed \(after 3 attempts\)"):
            c.complete("hello", temperature=0.0)
        assert srv.requests == 3 and c.metrics.failures == {"http_500": 3}
    with FakeOpenAI(task, api_key="another-key") as srv:  # 401 is not retried; the key is not in the error
        c = client(srv, tmp_path / "cache")
        with pytest.raises(LLMError) as err:
            c.complete("hello", temperature=0.0)
        assert srv.auth_failures == 1 and KEY not in str(err.value)
        assert "(1 attempt, not retried)" in str(err.value)
    assert not list((tmp_path / "cache").rglob("*.json"))  # failures are never cached


@pytest.mark.parametrize("secret", [KEY, "3f9a0c1e7b2d4a68b0e1c9d7f2a4b6c8", "vllm-local-token-0123456789"])
@pytest.mark.parametrize("pad", [0, 200, 260, 290])
def test_a_key_echoed_by_the_endpoint_never_reaches_the_error(task, tmp_path, monkeypatch, secret, pad):
    """Redaction happens before truncation, for any key format (OpenAI sk-, Azure hex, a vLLM token)."""
    from tripost.feedback import SECRET_FRAGMENT

    monkeypatch.setenv(KEY_ENV, secret)
    with FakeOpenAI(task, api_key=secret, faults=lambda n, p: f"echo:{pad}") as srv:
        c = client(srv, tmp_path / "cache")
        with pytest.raises(LLMError) as err:
            c.complete("hello", temperature=0.0)
    msg = str(err.value)
    assert srv.requests == 1 and "Incorrect API key" in msg or pad >= 260
    pieces = {secret[i:i + SECRET_FRAGMENT] for i in range(len(secret) - SECRET_FRAGMENT + 1)}
    assert not any(piece in msg for piece in pieces), msg


def test_a_reply_with_a_lone_surrogate_is_cached_and_judged_not_fatal(task, tmp_path):
    """The endpoint's JSON escapes a lone surrogate validly; the reply is made writable (U+FFFD), cached,
    and the strict parser drops the trajectory instead of the run crashing."""
    with FakeOpenAI(task, api_key=KEY, faults=lambda n, p: "content:Step (1) is \ud800 fine") as srv:
        c = client(srv, tmp_path / "cache")
        text = c.complete("hello", temperature=0.0)
        assert text == "Step (1) is \ufffd fine" and c.metrics.invalid_unicode_replies == 1
        assert c.complete("hello", temperature=0.0) == text and srv.requests == 1  # from the cache
        r = edit(task, llm_backend(task, client(srv, tmp_path / "cache2"), n_shots=1), "1 + 2 + 3 =", "6", A_W2,
                 **edit_limits())
    assert (r.status, r.filter) == ("dropped", "fbk_error")


def test_redact_masks_fragments_and_key_shapes():
    from tripost.feedback import redact

    secret = "abcdefghijklmnopqrstuvwxyz012345"
    assert redact(f"token {secret[5:17]} and {secret[:7]}", secret) == f"token *** and {secret[:7]}"
    assert redact("Authorization: Bearer anything-here, next", None) == "Authorization: Bearer ***, next"
    assert redact('{"api_key": "zzz999"}', None) == '{"api_key": "***"}'
    assert redact("nothing secret", secret) == "nothing secret"


def test_make_backend_from_params(task, tmp_path, monkeypatch):
    params = repo_params({"feedback_backend": {
        "backend": "scripted", "llm": {"base_url": "http://127.0.0.1:9/v1", "model": "m", "api_key_env": KEY_ENV,
                                       "cache_dir": str(tmp_path)}},
        "per_task": {"fake_add": {"feedback_backend": {"backend": "llm", "llm": {"n_shots": 1}}}}})
    b = make_backend(task, params)
    assert b.name == "llm" and len(b.shots) == 1 and b.client.api_key_env == KEY_ENV
    params["per_task"]["fake_add"] = {}
    assert make_backend(task, params).name == "scripted"
    # the params hold the variable's name, and nothing the client keeps holds the key itself
    assert KEY not in json.dumps(params) and KEY not in json.dumps({k: str(v) for k, v in vars(b.client).items()})


def test_the_concurrency_benchmark_runs_and_reports_identical_outputs(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(root / "benchmarks/llm_concurrency.py"), "--questions", "6",
                           "--latency", "0.05", "--in-flight", "1", "4", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    assert [r["max_in_flight"] for r in res["rows"]] == [1, 4]
    assert all(r["identical_to_sequential"] for r in res["rows"]) and res["speedup"] == res["rows"][-1]["speedup"]
