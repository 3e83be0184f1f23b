"""Interaction with an LLM as FBK/IMP: concurrent vs sequential requests.

    python benchmarks/llm_concurrency.py [--questions 64] [--latency 0.5] [--in-flight 1 4 16]

The same interaction (`tripost.interaction.collect`, one pass over `--questions` questions, a third of
the model's attempts right, two thirds wrong and edited through FBK -> IMP -> FBK) against the local
OpenAI-compatible test server answering every request after `--latency` seconds, as a remote LLM
would. Each row runs with a fresh cache and `max_in_flight` trajectories edited at the same time;
the trajectories must be byte-identical to the sequential run. Writes
benchmarks/results/llm_concurrency.json.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from _common import machine, table  # noqa: E402
from _fake_task import AddTask, fake_model_generate  # noqa: E402
from _tiny import llm_backend, llm_client  # noqa: E402
from fake_openai_server import FakeOpenAI  # noqa: E402

from tripost.interaction import collect  # noqa: E402
from tripost.io import write_json  # noqa: E402
from tripost.params import deep_merge, load_params  # noqa: E402

KEY_ENV = "TRIPOST_BENCH_LLM_KEY"


def run(task, pool, srv, in_flight: int, work: Path) -> tuple[float, dict, str]:
    client = llm_client(base_url=srv.base_url, model="oracle", api_key_env=KEY_ENV, timeout=30.0,
                       cache_dir=work / "cache", max_in_flight=in_flight)
    params = deep_merge(load_params(ROOT / "params.yaml"),
                        {"seed": 0, "interaction": {"temperature": 1.0, "max_new_tokens": 64, "batch_size": 64,
                                                    "chunk_size": 64, "max_passes": 1, "max_data_length": 10**9,
                                                    "pool_limit": None}})
    t0 = time.perf_counter()
    m = collect(task, pool, backend=llm_backend(task, client, n_shots=2), params=params, iteration=1,
                out_dir=work / "out", progress=False,
                generate_fn=fake_model_generate(task, kinds=("gold", "wrong", "wrong2")))
    wall = time.perf_counter() - t0
    digest = hashlib.sha256((work / "out" / "trajectories.jsonl").read_bytes()).hexdigest()
    return wall, m, digest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--questions", type=int, default=64)
    ap.add_argument("--latency", type=float, default=0.5)
    ap.add_argument("--in-flight", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/llm_concurrency.json"))
    args = ap.parse_args()
    os.environ[KEY_ENV] = "bench-key"
    task = AddTask()
    pool = task.generate(args.questions, "seen", seed=5)
    rows, base = [], None
    with FakeOpenAI(task, api_key="bench-key", latency=args.latency) as srv:
        for n in sorted(args.in_flight):
            with tempfile.TemporaryDirectory() as d:
                wall, m, digest = run(task, pool, srv, n, Path(d))
            base = base or (wall, digest)
            rows.append({"max_in_flight": n, "wall_s": round(wall, 2), "llm_calls": m["llm"]["calls"],
                         "calls_per_s": round(m["llm"]["calls"] / wall, 2), "speedup": round(base[0] / wall, 2),
                         "edited": m["edited"], "identical_to_sequential": digest == base[1]})
        peak = srv.max_active
    print(table(rows, ["max_in_flight", "wall_s", "llm_calls", "calls_per_s", "speedup", "identical_to_sequential"]))
    write_json(args.out, {"benchmark": "llm_concurrency", "machine": machine(), "questions": args.questions,
                          "latency_s": args.latency, "server_peak_in_flight": peak, "rows": rows,
                          "speedup": rows[-1]["speedup"]})


if __name__ == "__main__":
    main()
