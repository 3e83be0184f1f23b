"""The paper-style results table from reports/metrics.json (task -> method -> metrics)."""

from __future__ import annotations

from tripost.tasks import TASK_NAMES, task_label

METHOD_LABELS = {
    "ft": "+ft (M0, greedy)",
    "ft_si": "M0 under SI inference (diagnostic)",
    "ft_si_demo": "+ft SI. demo",
    "lmsi": "LMSI",
}


def method_label(method: str) -> str:
    if method in METHOD_LABELS:
        return METHOD_LABELS[method]
    if method.startswith("tripost_auto_t"):
        return f"TriPosT-auto (t={method.rsplit('t', 1)[1]})"
    if method.startswith("tripost_t"):
        return f"TriPosT (t={method.rsplit('t', 1)[1]})"
    return method


def method_order(methods) -> list[str]:
    def key(m: str):
        fixed = list(METHOD_LABELS)
        if m in fixed:
            return (0, fixed.index(m), 0)
        if m.startswith("tripost_auto_t"):
            return (2, 0, int(m.rsplit("t", 1)[1]))
        if m.startswith("tripost_t"):
            return (1, 0, int(m.rsplit("t", 1)[1]))
        return (3, 0, 0)

    return sorted(methods, key=key)


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def _pct_ci(x, ci) -> str:
    """`24.0 [18.0, 30.5]`: the accuracy and its 95% interval, when known."""
    if x is None:
        return "–"
    if not isinstance(ci, dict) or ci.get("low") is None:
        return _pct(x)
    return f"{100 * x:.1f} [{100 * ci['low']:.1f}, {100 * ci['high']:.1f}]"


def _signed_ci(d) -> str:
    if not isinstance(d, dict) or d.get("mean") is None:
        return "–"
    if d.get("low") is None:  # a single run: no interval
        return f"{100 * d['mean']:+.1f}"
    return f"{100 * d['mean']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"


def results_markdown(metrics: dict) -> str:
    """Rows = methods; columns = task × (seen, unseen, total), then SI freq / contrib per task."""
    tasks = [t for t in TASK_NAMES if t in metrics] + [t for t in metrics if t not in TASK_NAMES]
    methods = method_order({m for t in tasks for m in metrics[t]})
    head = ["Method"] + [f"{task_label(t)} {c}" for t in tasks for c in ("seen", "unseen", "total")]
    lines = ["## Accuracy (%)", "",
             "`+ft` is M0's greedy chain-of-thought answer (one attempt, no feedback); every other row runs the "
             "self-improving inference. Totals carry a 95% bootstrap interval over test questions.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in methods:
        cells = [method_label(m)]
        for t in tasks:
            row = metrics[t].get(m, {})
            cells += [_pct(row.get(k)) for k in ("seen", "unseen")]
            cells.append(_pct_ci(row.get("total"), (row.get("intervals") or {}).get("total")))
        lines.append("| " + " | ".join(cells) + " |")
    head = ["Method"] + [task_label(t) for t in tasks]
    lines += ["", "## Total accuracy minus +ft (points, paired 95% bootstrap interval over the same questions)", "",
              "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in methods:
        if m == "ft":
            continue
        lines.append("| " + " | ".join([method_label(m)] + [_signed_ci(metrics[t].get(m, {}).get("vs_ft"))
                                                             for t in tasks]) + " |")
    head = ["Method"] + [f"{task_label(t)} {c}" for t in tasks for c in ("right kept", "wrong flagged",
                                                                                   "step found")]
    lines += ["", "## Self-verification (%): the model's own first feedback against the gold answer and the "
              "scripted FBK", "", "right kept = right first attempts it accepts; wrong flagged = wrong first "
              "attempts it rejects; step found = wrong first attempts rejected at FBK's first wrong step.", "",
              "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in methods:
        if m == "ft":
            continue
        cells = [method_label(m)]
        for t in tasks:
            v = metrics[t].get(m, {}).get("verification") or {}
            cells += [_pct(v.get(k)) for k in ("right_accepted_rate", "wrong_rejected_rate", "step_located_rate")]
        lines.append("| " + " | ".join(cells) + " |")
    head = ["Method"] + [f"{task_label(t)} {c}" for t in tasks for c in ("SI freq", "SI contrib")]
    lines += ["", "## Self-improvement (%)", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in methods:
        if m == "ft":
            continue
        cells = [method_label(m)]
        for t in tasks:
            row = metrics[t].get(m, {})
            cells += [_pct(row.get(k)) for k in ("si_freq", "si_contrib")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# collecting metrics (pure JSON: no model, no torch)

SUMMARY_KEYS = ("seen", "unseen", "total", "si_freq", "si_contrib")


def _task_method_from_path(path) -> tuple[str, str]:
    """reports/eval/<task>/<method>/metrics.json -> (task, method)."""
    from pathlib import Path

    p = Path(path)
    return p.parent.parent.name, p.parent.name


def _greedy_row(m: dict) -> dict:
    """M0's greedy single attempt = the first attempt of its (greedy) self-improving run."""
    by_split = m.get("by_split") or {}
    return {"seen": _dig(by_split, ["seen", "first_attempt_accuracy"]) if m.get("seen") is not None else None,
            "unseen": _dig(by_split, ["unseen", "first_attempt_accuracy"]) if m.get("unseen") is not None else None,
            "total": m.get("first_attempt_accuracy"), "si_freq": None, "si_contrib": None,
            "intervals": m.get("first_attempt_intervals"), "verification": None}


def _outcomes(path, key: str) -> dict[str, bool] | None:
    """question -> outcome (`correct` or `first_attempt_correct`) from predictions.jsonl beside `path`."""
    from pathlib import Path

    from tripost.io import read_jsonl

    f = Path(path).parent / "predictions.jsonl"
    if not f.exists():
        return None
    return {r["question"]: bool(r.get(key)) for r in read_jsonl(f)}


def combine_metrics(paths) -> dict:
    """task -> method -> {seen, unseen, total, si_freq, si_contrib, intervals, verification, vs_ft} from
    per-(task, method) metrics files written by tripost.evaluation.run_evaluation. Task and method come
    from the file's own "task" / "method" keys, else from its path (`.../<task>/<method>/metrics.json`).

    The `ft` file (M0 under the self-improving inference) gives two rows: `ft`, M0's greedy
    chain-of-thought answer (its first attempt: the paper's +ft baseline, as the original code evaluates
    it) and `ft_si`, the same model under the self-improving inference (a diagnostic). `vs_ft` is each
    row's total accuracy minus ft's, paired over the same questions, with a 95% bootstrap interval
    (from the predictions.jsonl files beside the metrics). Tasks in the paper's order, methods in table
    order; a later file for the same (task, method) wins."""
    import json
    from pathlib import Path

    from tripost.stats import paired_difference

    out: dict[str, dict[str, dict]] = {}
    outcomes: dict[tuple[str, str], dict | None] = {}
    for path in paths:
        m = json.loads(Path(path).read_text())
        t_default, m_default = _task_method_from_path(path)
        task, method = m.get("task") or t_default, m.get("method") or m_default
        row = {**{k: m.get(k) for k in SUMMARY_KEYS}, "intervals": m.get("intervals"),
               "verification": m.get("verification")}
        if method == "ft":
            out.setdefault(task, {})["ft"] = _greedy_row(m)
            out[task]["ft_si"] = row
            outcomes[(task, "ft")] = _outcomes(path, "first_attempt_correct")
            outcomes[(task, "ft_si")] = _outcomes(path, "correct")
        else:
            out.setdefault(task, {})[method] = row
            outcomes[(task, method)] = _outcomes(path, "correct")
    for task, methods in out.items():
        base = outcomes.get((task, "ft"))
        for method, row in methods.items():
            mine = outcomes.get((task, method))
            if method == "ft" or not base or not mine or set(base) != set(mine):
                continue
            qs = sorted(base)
            row["vs_ft"] = paired_difference([mine[q] for q in qs], [base[q] for q in qs])
    tasks = [t for t in TASK_NAMES if t in out] + sorted(t for t in out if t not in TASK_NAMES)
    return {t: {m: out[t][m] for m in method_order(out[t])} for t in tasks}


# --------------------------------------------------------------------------------------------------
# M0 (the sft stage): numbers and learning curve as small git-tracked files

SFT_TRAIN_KEYS = ("steps", "examples", "final_loss", "tokens_per_s")
SFT_EVAL_KEYS = ("seen", "unseen", "total", "buckets", "n")


def sft_summary(model_dir) -> tuple[dict, list[dict]]:
    """(metrics, loss history) of one SFT run from its output directory (`models/<task>/ft`):
    training numbers from `train_metrics.json`, M0's greedy accuracy from `greedy_accuracy.json`,
    the logged losses from `loss_history.json`. The `sft_summary` stage copies them out of the
    DVC-cached checkpoint so the report and `dvc metrics/plots show` never need the model itself."""
    import json
    from pathlib import Path

    d = Path(model_dir)
    missing = [f for f in ("train_metrics.json", "greedy_accuracy.json", "loss_history.json") if not (d / f).exists()]
    if missing:
        raise FileNotFoundError(f"{d}: not an SFT output directory (missing {', '.join(missing)})")
    train = json.loads((d / "train_metrics.json").read_text())
    acc = json.loads((d / "greedy_accuracy.json").read_text())
    metrics = {"task": d.parent.name, **{k: train.get(k) for k in SFT_TRAIN_KEYS},
               "train_wall_time_s": train.get("wall_time_s"),
               **{k: acc.get(k) for k in SFT_EVAL_KEYS}, "eval_wall_time_s": acc.get("eval_wall_time_s")}
    history = [{"step": r["step"], "loss": r["loss"]} for r in json.loads((d / "loss_history.json").read_text())
               if r.get("loss") is not None]
    return metrics, history


def _read_per_task(sft_dir, tasks, name) -> dict:
    import json
    from pathlib import Path

    out = {}
    for task in tasks:
        f = Path(sft_dir) / task / name
        if f.exists():
            out[task] = json.loads(f.read_text())
    return out


def sft_loss_histories(sft_dir, tasks) -> dict[str, list[dict]]:
    """task -> the loss history rows of its M0 run, for the tasks with `<sft_dir>/<task>/loss_history.json`."""
    return _read_per_task(sft_dir, tasks, "loss_history.json")


def sft_metrics(sft_dir, tasks) -> dict[str, dict]:
    """task -> M0's summary (`<sft_dir>/<task>/metrics.json`), for the tasks that have one."""
    return _read_per_task(sft_dir, tasks, "metrics.json")


def sft_markdown(summaries: dict[str, dict]) -> str:
    """M0's greedy accuracy (one attempt, no feedback) and its SFT run, one row per task."""
    head = ["Task", "seen", "unseen", "total", "SFT steps", "train wall (min)", "tokens/s", "final loss"]
    lines = ["## M0 (+ft), greedy, one attempt (sft stage)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    def cell(x, spec):
        return "–" if x is None else format(x, spec)

    for task, m in summaries.items():
        wall = m.get("train_wall_time_s")
        cells = [task_label(task)] + [_pct(m.get(k)) for k in ("seen", "unseen", "total")] + [
            cell(m.get("steps"), "d"), cell(None if wall is None else wall / 60, ".1f"),
            cell(m.get("tokens_per_s"), ",.0f"), cell(m.get("final_loss"), ".3f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


LLM_KEYS = ("requests", "calls", "cache_hits", "retries", "prompt_tokens", "completion_tokens")


def llm_usage(paths) -> dict:
    """task -> summed LLM usage (requests, calls, cache hits, retries, tokens, cost in USD or None) over
    interaction metrics files (`interactions/<task>/<model>/interaction_metrics.json`, key "llm")."""
    import json
    from pathlib import Path

    out: dict[str, dict] = {}
    for path in paths:
        m = json.loads(Path(path).read_text())
        llm = m.get("llm") or {}
        task = m.get("task") or Path(path).parent.parent.name
        row = out.setdefault(task, {**{k: 0 for k in LLM_KEYS}, "cost_usd": None, "backends": []})
        for k in LLM_KEYS:
            row[k] += int(llm.get(k) or 0)
        if llm.get("cost_usd") is not None:
            row["cost_usd"] = round((row["cost_usd"] or 0.0) + float(llm["cost_usd"]), 6)
        if m.get("backend") and m["backend"] not in row["backends"]:
            row["backends"].append(m["backend"])
    return out


def llm_markdown(usage: dict) -> str:
    head = ["Task", "FBK/IMP", "requests", "HTTP calls", "cache hits", "prompt tokens", "completion tokens",
            "cost (USD)"]
    lines = ["## FBK/IMP usage (all interactions)", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for task, r in usage.items():
        cost = "–" if r.get("cost_usd") is None else f"{r['cost_usd']:.4f}"
        lines.append("| " + " | ".join([task_label(task), "/".join(r.get("backends") or []) or "–"]
                                       + [f"{r[k]:,}" for k in ("requests", "calls", "cache_hits", "prompt_tokens",
                                                                  "completion_tokens")] + [cost]) + " |")
    return "\n".join(lines) + "\n"


def _last_tripost(rows: dict) -> str | None:
    its = sorted((int(m.rsplit("t", 1)[1]), m) for m in rows if m.startswith("tripost_t"))
    return its[-1][1] if its else None


def _dig(d, keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _per_eval_metrics(metrics: dict, eval_dir: str) -> dict:
    """task -> method -> row from the per-stage files `<eval_dir>/<task>/<method>/metrics.json`
    of one `dvc exp show` run (what each evaluate stage itself wrote)."""
    out: dict = {}
    prefix = eval_dir.rstrip("/") + "/"
    for path, entry in metrics.items():
        row = _dig(entry, ["data"])
        if path.startswith(prefix) and path.count("/", len(prefix)) == 2 and path.endswith("/metrics.json") \
                and isinstance(row, dict):
            task, method = _task_method_from_path(path)
            out.setdefault(task, {})[method] = row
    return out


def _exp_runs(exp_show, params_file: str):
    """(name, params, metrics) of every run in parsed `dvc exp show --json` output, in the order shown
    (the workspace, then each baseline commit before its experiments)."""
    out = []

    def visit(node, name=None):
        if isinstance(node, list):
            for x in node:
                visit(x, name)
            return
        if not isinstance(node, dict):
            return
        name = node.get("name") or node.get("rev") or name
        data = node.get("data") if isinstance(node.get("data"), dict) else None
        if data and isinstance(data.get("params"), dict) and isinstance(data.get("metrics"), dict):
            params = _dig(data["params"], [params_file, "data"])
            if isinstance(params, dict):
                out.append((name, params, data["metrics"]))
        for v in node.values():
            if isinstance(v, (list, dict)):
                visit(v, name)

    visit(exp_show)
    return out


def _sweep_order(row: dict) -> tuple:
    return row["task"], row["ratio"]


def sweep_rows(exp_show, *, metrics_file: str = "reports/metrics.json", params_file: str = "params.yaml",
               method: str | None = None, tasks=None, eval_dir: str = "reports/eval") -> list[dict]:
    """Ratio-sweep rows [{"task", "ratio", "share", "method", "total", "si_freq", "si_contrib", "exp"}]
    from the parsed output of `dvc exp show --json` (any nesting: the workspace, baseline commits and
    their experiments are all walked). Each run contributes its `processing.improvement_ratio` r
    (share = r / (r + 2), the improvement share p of the paper's ablation) and, per task, the metrics
    of `method` (default: the last TriPosT iteration). The per-stage metrics files under `eval_dir`
    are preferred to the combined `metrics_file`, so an experiment that reran only some tasks' stages
    (`dvc exp run -S ... evaluate@<task>-tripost_t2`) still reports fresh numbers for them; `tasks`
    keeps only the swept tasks (the others' files are the baseline's, unchanged). Runs with the same
    (task, ratio) keep the first seen."""
    rows: list[dict] = []
    seen: set[tuple] = set()
    keep = set(tasks) if tasks else None
    for name, params, run_metrics in _exp_runs(exp_show, params_file):
        ratio = _dig(params, ["processing", "improvement_ratio"])
        metrics = _per_eval_metrics(run_metrics, eval_dir) or _dig(run_metrics, [metrics_file, "data"])
        if ratio is None or not isinstance(metrics, dict):
            continue
        ratio = float(ratio)
        for task, methods in metrics.items():
            if not isinstance(methods, dict) or (keep is not None and task not in keep):
                continue
            m = method or _last_tripost(methods)
            if m is None or m not in methods or (task, ratio) in seen:
                continue
            seen.add((task, ratio))
            r = methods[m]
            rows.append({"task": task, "ratio": ratio, "share": ratio / (ratio + 2) if ratio > 0 else None,
                         "method": m, "total": r.get("total"), "si_freq": r.get("si_freq"),
                         "si_contrib": r.get("si_contrib"), "exp": name})
    return sorted(rows, key=_sweep_order)


# --------------------------------------------------------------------------------------------------
# seeds: the same pipeline run with several `seed`s (`dvc exp run -S seed=N`) on one fixed M0

def _run_rows(metrics: dict, eval_dir: str, metrics_file: str) -> dict:
    """task -> method -> {total, si_contrib, wrong_rejected} of one run; `ft` is M0's greedy answer
    (the first attempt of its self-improving run) and `ft_si` the same model under SI, as in the
    results table."""
    def row(m: dict) -> dict:
        return {"total": m.get("total"), "si_contrib": m.get("si_contrib"),
                "wrong_rejected": (m.get("verification") or {}).get("wrong_rejected_rate")}

    per_stage = _per_eval_metrics(metrics, eval_dir)
    if not per_stage:
        return {task: {method: row(m) for method, m in (methods or {}).items()}
                for task, methods in (_dig(metrics, [metrics_file, "data"]) or {}).items()}
    out: dict = {}
    for task, methods in per_stage.items():
        for method, m in methods.items():
            if method == "ft":
                out.setdefault(task, {})["ft"] = row(_greedy_row(m))
                method = "ft_si"
            out.setdefault(task, {})[method] = row(m)
    return out


def seed_rows(exp_show, *, params_file: str = "params.yaml", metrics_file: str = "reports/metrics.json",
              eval_dir: str = "reports/eval") -> dict:
    """Mean and 95% interval over seeds, per task and method, from `dvc exp show --json` output.

    Runs are grouped by their params with `seed` left out; the group holding the most seeds (the
    first such group on a tie) is the multi-seed result, one run per seed (the first shown), so a
    ratio sweep or another experiment in the same repository never mixes in. For each (task, method):
    the total accuracy per seed, its mean with a Student-t interval over seeds, the same for the
    difference against `+ft` of the same run (M0's greedy answer: M0 is fixed, so this is the method's
    own seed spread), the SI contribution and the share of wrong first attempts the model rejects
    itself (self-verification). Returns {"seeds", "runs", "ignored", "rows"}."""
    import json

    from tripost.stats import seed_interval

    groups: dict[str, dict] = {}
    for name, params, metrics in _exp_runs(exp_show, params_file):
        if "seed" not in params:
            continue
        key = json.dumps({k: v for k, v in params.items() if k != "seed"}, sort_keys=True)
        groups.setdefault(key, {}).setdefault(int(params["seed"]), (name, metrics))
    if not groups:
        return {"seeds": [], "runs": {}, "ignored": 0, "rows": []}
    best = max(groups.values(), key=len)  # max keeps the first of equal-sized groups
    ignored = sum(len(g) for g in groups.values()) - len(best)
    per_seed = {seed: _run_rows(metrics, eval_dir, metrics_file) for seed, (_, metrics) in sorted(best.items())}
    tasks = [t for t in TASK_NAMES if any(t in r for r in per_seed.values())]
    tasks += sorted({t for r in per_seed.values() for t in r} - set(tasks))
    rows = []
    for task in tasks:
        methods = method_order({m for r in per_seed.values() for m in r.get(task, {})})
        for method in methods:
            vals = {s: r.get(task, {}).get(method) for s, r in per_seed.items()}
            vals = {s: v for s, v in vals.items() if v and v.get("total") is not None}
            if not vals:
                continue
            diffs = [v["total"] - per_seed[s][task]["ft"]["total"] for s, v in vals.items()
                     if (per_seed[s][task].get("ft") or {}).get("total") is not None]
            rows.append({"task": task, "method": method, "totals": {str(s): v["total"] for s, v in vals.items()},
                         "total": seed_interval(v["total"] for v in vals.values()),
                         "vs_ft": seed_interval(diffs) if method != "ft" else None,
                         "si_contrib": seed_interval(v.get("si_contrib") for v in vals.values()),
                         "wrong_rejected": seed_interval(v.get("wrong_rejected") for v in vals.values())})
    return {"seeds": sorted(best), "runs": {str(s): n for s, (n, _) in sorted(best.items())}, "ignored": ignored,
            "rows": rows}


def seeds_markdown(result: dict) -> str:
    """The multi-seed table: mean [95% interval over seeds] of each task x method."""
    seeds = result.get("seeds") or []
    lines = [f"## Over seeds {', '.join(map(str, seeds))} (one fixed M0; mean [95% t-interval over seeds], %)", ""]
    if not seeds:
        return "\n".join(lines + ["No multi-seed runs found (`dvc exp run -S seed=N`).", ""])
    lines += ["| Task | Method | total | per seed | minus +ft | SI contrib | wrong rejected |", "|---|---|---|---|---|---|---|"]
    def cell(d) -> str:  # mean [interval] of a seed_interval
        return _pct_ci((d or {}).get("mean"), d)

    for r in result["rows"]:
        per = " / ".join(_pct(r["totals"].get(str(s))) if str(s) in r["totals"] else "–" for s in seeds)
        lines.append(f"| {task_label(r['task'])} | {method_label(r['method'])} | {cell(r['total'])} | {per} | "
                     f"{_signed_ci(r['vs_ft'])} | {cell(r['si_contrib'])} | {cell(r['wrong_rejected'])} |")
    if result.get("ignored"):
        lines += ["", f"{result['ignored']} other run(s) with different params were left out."]
    return "\n".join(lines + [""])


def main(argv=None) -> None:
    """`python -m tripost.report combine OUT METRICS...` writes the combined task -> method file;
    `python -m tripost.report sft-summary MODEL_DIR OUT_DIR` writes M0's metrics and loss history;
    `python -m tripost.report sweep OUT [EXP_SHOW_JSON] [--tasks T...] [--merge]` writes ratio-sweep
    rows from `dvc exp show --json` output (a file, or run here when omitted); `--merge` replaces only
    the rows of the tasks found and keeps the others already in OUT; `python -m tripost.report seeds OUT
    [EXP_SHOW_JSON] [--markdown MD]` writes the mean and interval over seeds (`seed_rows`)."""
    import argparse
    import json
    import subprocess
    from pathlib import Path

    from tripost.io import write_json

    ap = argparse.ArgumentParser(prog="python -m tripost.report")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("combine")
    c.add_argument("out")
    c.add_argument("metrics", nargs="+")
    u = sub.add_parser("llm-usage", help="FBK/IMP calls, tokens and cost per task from interaction metrics")
    u.add_argument("out")
    u.add_argument("metrics", nargs="*")
    m = sub.add_parser("sft-summary", help="M0's metrics.json and loss_history.json from an SFT output dir")
    m.add_argument("model_dir")
    m.add_argument("out_dir")
    s = sub.add_parser("sweep")
    s.add_argument("out")
    s.add_argument("exp_show", nargs="?")
    s.add_argument("--metrics-file", default="reports/metrics.json")
    s.add_argument("--method", default=None)
    s.add_argument("--tasks", nargs="+", default=None, help="only these tasks (the ones the experiments reran)")
    s.add_argument("--merge", action="store_true",
                   help="keep OUT's rows of other tasks (a sweep run task by task, on different baselines)")
    d = sub.add_parser("seeds", help="mean and 95%% interval over seeds from `dvc exp show --json`")
    d.add_argument("out")
    d.add_argument("exp_show", nargs="?")
    d.add_argument("--markdown", default=None, help="also write the table here")
    a = ap.parse_args(argv)

    def exp_show(path):
        """Parsed `dvc exp show --json`: from a file, or run here when none is given."""
        if path:
            return json.loads(Path(path).read_text())
        return json.loads(subprocess.run(["dvc", "exp", "show", "--json"], check=True, capture_output=True,
                                         text=True).stdout)

    if a.cmd == "combine":
        combined = combine_metrics(a.metrics)
        write_json(a.out, combined)
        print(f"{a.out}: {sum(len(v) for v in combined.values())} (task, method) rows")
    elif a.cmd == "llm-usage":
        usage = llm_usage(a.metrics)
        write_json(a.out, usage)
        print(f"{a.out}: FBK/IMP usage of {len(usage)} task(s)")
    elif a.cmd == "sft-summary":
        metrics, history = sft_summary(a.model_dir)
        write_json(Path(a.out_dir) / "metrics.json", metrics)
        write_json(Path(a.out_dir) / "loss_history.json", history)
        print(f"{a.out_dir}: M0 seen {metrics['seen']}, unseen {metrics['unseen']}; {len(history)} loss points")
    elif a.cmd == "seeds":
        result = seed_rows(exp_show(a.exp_show))
        write_json(a.out, result)
        if a.markdown:
            Path(a.markdown).parent.mkdir(parents=True, exist_ok=True)
            Path(a.markdown).write_text(seeds_markdown(result))
        print(f"{a.out}: {len(result['rows'])} (task, method) rows over seeds {result['seeds']}"
              + (f"; {result['ignored']} run(s) with other params left out" if result["ignored"] else ""))
    else:
        data = exp_show(a.exp_show)
        rows = sweep_rows(data, metrics_file=a.metrics_file, method=a.method, tasks=a.tasks)
        if a.merge and Path(a.out).exists():
            fresh = {r["task"] for r in rows}
            kept = [r for r in json.loads(Path(a.out).read_text()) if r["task"] not in fresh]
            rows = sorted(kept + rows, key=_sweep_order)
        write_json(a.out, rows)
        print(f"{a.out}: {len(rows)} sweep rows")


if __name__ == "__main__":
    main()
