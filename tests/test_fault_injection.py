"""Fault injection: 20 seeded SIGKILLs at random moments of the pipeline's two long stages, each followed by a
rerun that must end with exactly the outputs of an uninterrupted run, with no clean-up by hand.

- interaction (`tripost.interaction.collect`: generation, scripted FBK/IMP editing, fsynced row writes;
  a fake model with a little latency per generation call, so kills land all over the run): 8 kills,
  and 6 more with FBK/IMP through a concurrent LLM client (a local OpenAI-compatible server);
- training (`tripost.training.train`: a real tiny LLaMA, 8 steps, a checkpoint every 2): 8 kills at random
  times, and 4 inside the checkpoint save of a seeded step: after its weights, its optimizer, its scheduler and
  its RNG state are written (each time before its trainer state).

Kill times are drawn (fixed seed) from [0, 0.9 x the duration of the uninterrupted run). Every run is a process
forked from a helper that imported torch but never used it, so a run starts in milliseconds and its
kill is a real SIGKILL from outside (or, inside a save, from the process itself).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

# The helper reads one JSON command per line: {"unit", "out", "kill_after" (s, or null), "kill_in_save"
# ([checkpoint step, file written last], or null)}; it forks a run, SIGKILLs it after `kill_after` seconds
# when asked, and answers {"rc", "seconds"}.
HELPER = r"""
import json, os, signal, sys, time
sys.path[:0] = [{tests!r}, {src!r}]
import torch  # imported before any fork (never used by this process), with what a run imports on its own:
import matplotlib; matplotlib.use("Agg")
import datasets, matplotlib.pyplot, peft, torch._dynamo, transformers.trainer  # noqa: E401 - ~10 s per run otherwise
from _fake_task import AddTask, fake_model_generate
from _tiny import TINY, records, repo_params, texts, train_config
from tripost.feedback import ScriptedBackend
from tripost.interaction import collect
from tripost.modeling import build_tiny_llama, build_tokenizer
from tripost.training import train

INTERACT_PARAMS = repo_params({{"seed": 0, "interaction": {{"temperature": 1.0, "max_new_tokens": 64, "max_generation_calls": 3,
    "batch_size": 4, "chunk_size": 4, "max_rounds": 5, "max_attempt_words": 512, "max_passes": 2, "pass_seed": 40,
    "max_data_length": 10**6}}, "processing": {{"improvement_ratio": 1.5}}, "feedback_backend": {{"backend": "scripted"}}}})
TRAIN_CFG = train_config(max_steps=8, lr=1e-3, batch_size=4, save_steps=2, logging_steps=1, seed=3)


def interact(out, base_url=None):
    task = AddTask()
    gen = fake_model_generate(task)
    def slow_generate(*a, **k):
        time.sleep(0.05)
        return gen(*a, **k)
    backend = ScriptedBackend(task)
    if base_url:  # FBK/IMP through the local OpenAI-compatible server, 8 requests in flight, cached
        from _tiny import llm_backend, llm_client
        client = llm_client(base_url=base_url, model="oracle", api_key_env="TRIPOST_FI_KEY", timeout=5, max_retries=3,
                           backoff_initial=0.001, backoff_max=0.01, cache_dir=os.path.join(out, "llm-cache"),
                           max_in_flight=8)
        backend = llm_backend(task, client, n_shots=2)
    collect(task, task.generate(12, "seen", seed=7), backend=backend, params=INTERACT_PARAMS,
            iteration=1, out_dir=out, generate_fn=slow_generate, progress=False)


def training(out, kill_in_save):
    torch.set_num_threads(1)
    if kill_in_save:  # [checkpoint step, "before"/"after", file]: SIGKILL around that file of that checkpoint
        step, when, target = kill_in_save
        from transformers import Trainer
        real_save, real_torch_save = Trainer._save_checkpoint, torch.save
        def save(self, *a, **k):
            if self.state.global_step == step:
                def tsave(obj, f, *aa, **kk):  # optimizer, scheduler and RNG states go through torch.save
                    hit = str(f).endswith(target)
                    if hit and when == "before":
                        os.kill(os.getpid(), signal.SIGKILL)
                    real_torch_save(obj, f, *aa, **kk)
                    if hit:
                        os.kill(os.getpid(), signal.SIGKILL)
                torch.save = tsave
            return real_save(self, *a, **k)
        Trainer._save_checkpoint = save
    recs = records(32)
    tok = build_tokenizer(texts(recs), vocab_size=512)
    torch.manual_seed(0)
    train(build_tiny_llama(TINY, tok), tok, recs, out, TRAIN_CFG)


for line in sys.stdin:
    cmd = json.loads(line)
    t0 = time.time()
    pid = os.fork()
    if pid == 0:
        os.dup2(2, 1)  # the run's prints go to stderr: stdout carries only the helper's answers
        try:
            if cmd["unit"] == "interact":
                interact(cmd["out"], cmd.get("base_url"))
            else:
                training(cmd["out"], cmd.get("kill_in_save"))
        except BaseException:
            import traceback; traceback.print_exc()
            os._exit(1)
        os._exit(0)
    if cmd.get("kill_after") is not None:
        end = t0 + cmd["kill_after"]
        while time.time() < end:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.005)
        else:
            os.kill(pid, signal.SIGKILL)
            done, status = os.waitpid(pid, 0)
    else:
        done, status = os.waitpid(pid, 0)
    rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    print(json.dumps({{"rc": rc, "seconds": time.time() - t0}}), flush=True)
"""


@pytest.fixture(scope="module")
def helper(tmp_path_factory):
    script = tmp_path_factory.mktemp("helper") / "helper.py"
    script.write_text(HELPER.format(tests=str(ROOT / "tests"), src=str(ROOT / "src")))
    proc = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, bufsize=1, env=dict(os.environ, TRIPOST_FI_KEY="sk-fault-injection"))

    def run(unit, out, kill_after=None, kill_in_save=None, base_url=None) -> dict:
        proc.stdin.write(json.dumps({"unit": unit, "out": str(out), "kill_after": kill_after,
                                     "kill_in_save": kill_in_save, "base_url": base_url}) + "\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        assert line, "the helper died"
        return json.loads(line)

    yield run
    proc.stdin.close()
    proc.wait(timeout=30)


def _interaction_outputs(out: Path) -> dict:
    m = json.loads((out / "interaction_metrics.json").read_text())
    m.pop("seconds"), m.pop("llm")
    return {"trajectories": (out / "trajectories.jsonl").read_bytes(),
            "generations": (out / "generations.jsonl").read_bytes(), "metrics": m}


def _training_outputs(out: Path) -> dict:
    from safetensors.torch import load_file

    hist = json.loads((out / "loss_history.json").read_text())
    return {"weights": load_file(out / "model.safetensors"), "steps": [h["step"] for h in hist],
            "losses": [round(h["loss"], 4) for h in hist if "loss" in h],
            "checkpoints_left": (out / "checkpoints").exists() and any((out / "checkpoints").iterdir())}


def _same_training(a: dict, b: dict) -> bool:
    return (a["steps"] == b["steps"] and a["losses"] == b["losses"] and a["weights"].keys() == b["weights"].keys()
            and all(torch.allclose(a["weights"][k], b["weights"][k], atol=1e-6) for k in a["weights"])
            and not a["checkpoints_left"])


def test_twenty_seeded_kills_each_rerun_ends_as_an_uninterrupted_run(helper, tmp_path):
    rng = random.Random(20261201)
    ref_i = helper("interact", tmp_path / "ref-interact")
    ref_t = helper("train", tmp_path / "ref-train")
    assert ref_i["rc"] == 0 and ref_t["rc"] == 0
    want_i, want_t = _interaction_outputs(tmp_path / "ref-interact"), _training_outputs(tmp_path / "ref-train")
    assert b'"status": "edited"' in want_i["trajectories"]  # real FBK/IMP editing happened

    plan = ([("interact", rng.uniform(0, 0.9 * ref_i["seconds"]), None) for _ in range(8)]
            + [("train", rng.uniform(0, 0.9 * ref_t["seconds"]), None) for _ in range(8)]
            + [("train", None, [rng.choice([2, 4, 6]), *where])  # weights written, optimizer not; ...
               for where in (("before", "optimizer.pt"), ("after", "optimizer.pt"), ("after", "scheduler.pt"),
                             ("after", "rng_state.pth"))])
    killed, seconds = 0, []
    for i, (unit, after, in_save) in enumerate(plan):
        for attempt in range(4):  # a run that ended before its kill time (a faster moment of a loaded
            out = tmp_path / f"{unit}-{i}-{attempt}"  # machine) is repeated, fresh, with half the time
            first = helper(unit, out, kill_after=after, kill_in_save=in_save)
            if first["rc"] != 0 or after is None:
                break
            after /= 2
        killed += first["rc"] == -signal.SIGKILL
        rerun = helper(unit, out)
        seconds.append(round(first["seconds"] + rerun["seconds"], 2))
        assert rerun["rc"] == 0, f"run {i} ({unit}, kill at {after} s / in save {in_save}): the rerun failed"
        if unit == "interact":
            assert _interaction_outputs(out) == want_i, f"run {i}: interaction outputs differ after a kill at {after} s"
        else:
            assert _same_training(_training_outputs(out), want_t), f"run {i}: training differs (kill {after} / {in_save})"
    print(f"reference runs: interact {ref_i['seconds']:.2f} s, train {ref_t['seconds']:.2f} s; kill + rerun: {seconds}")
    assert killed == 20, f"only {killed} of 20 runs were actually killed"


def test_seeded_kills_of_an_interaction_through_a_concurrent_llm_client(helper, tmp_path):
    """8 requests in flight to a local OpenAI-compatible server (20 ms per reply), its replies cached on
    disk: 6 seeded kills, each rerun (reusing what the killed run cached) ends with the trajectories and
    generations of an uninterrupted run."""
    from _fake_task import AddTask
    from fake_openai_server import FakeOpenAI

    rng = random.Random(17)
    with FakeOpenAI(AddTask(), api_key="sk-fault-injection", latency=0.02) as srv:
        ref = helper("interact", tmp_path / "ref", base_url=srv.base_url)
        assert ref["rc"] == 0 and srv.ok > 0
        want = _interaction_outputs(tmp_path / "ref")
        killed = 0
        for i in range(6):
            out = tmp_path / f"run-{i}"
            killed += helper("interact", out, kill_after=rng.uniform(0, 0.9 * ref["seconds"]),
                             base_url=srv.base_url)["rc"] == -signal.SIGKILL
            assert helper("interact", out, base_url=srv.base_url)["rc"] == 0, f"run {i}: the rerun failed"
            got = _interaction_outputs(out)
            assert got["trajectories"] == want["trajectories"] and got["generations"] == want["generations"], i
    assert killed >= 5
