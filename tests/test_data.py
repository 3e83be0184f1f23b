"""Data preparation and the loaders of real BIG-Bench files (fixtures written by us)."""

import json
import warnings
from pathlib import Path

import pytest

from tripost.data import load_split, prepare_task, summary
from tripost.tasks import TASK_NAMES, get_task, load_bigbench

FIXTURES = Path(__file__).parent / "fixtures"


def test_bbh_multistep_arithmetic_gold_answers_are_reproduced():
    task = get_task("multistep_arithmetic")
    examples = load_bigbench(FIXTURES / "bbh_multistep_arithmetic.json", "multistep_arithmetic", strict=True)
    assert [e.answer for e in examples] == ["24", "3929", "-219", "0"]
    for e in examples:
        assert task.parse_answer(e.rationale) == e.answer
        assert task.feedback(e.question, e.rationale).is_correct
    assert examples[0].split == "seen" and examples[0].bucket == "l4d2"


def test_bbh_word_sorting_gold_answers_are_reproduced():
    task = get_task("word_sorting")
    examples = load_bigbench(FIXTURES / "bbh_word_sorting.json", "word_sorting", strict=True)
    assert examples[0].answer == "costume counterpart oven"
    assert [e.split for e in examples] == ["seen", "seen", "seen", "unseen"]
    for e in examples:
        assert task.parse_answer(e.rationale) == e.answer


def test_bigbench_task_json_with_target_scores():
    examples = load_bigbench(FIXTURES / "bigbench_logical_deduction_task.json", "logical_deduction", strict=True)
    assert [e.answer for e in examples] == ["A", "B"]
    assert "Options:\n(A)" in examples[0].question


def test_bigbench_date_task_json_with_and_without_option_letters(tmp_path):
    stem = "Today is Christmas Eve of 1937. What is the date 10 days ago in MM/DD/YYYY?"
    scores = {"12/14/1937": 1, "12/14/2026": 0, "12/14/1950": 0, "12/14/2007": 0, "07/14/1938": 0}
    path = tmp_path / "task.json"
    path.write_text(json.dumps({"examples": [{"input": stem, "target_scores": scores}]}))
    lettered, = load_bigbench(path, "date_understanding", strict=True)
    bare, = load_bigbench(path, "date_understanding", strict=True, options={"option_letters": False})
    assert "(A) " in lettered.question and len(lettered.answer) == 1  # the paper: a letter
    assert bare.answer == "12/14/1937" and "(A)" not in bare.question  # BIG-Bench's own: the option text
    assert bare.question.splitlines()[2:] == [line[4:] for line in lettered.question.splitlines()[2:]]
    assert get_task("date_understanding", option_letters=False).feedback(bare.question, bare.rationale).is_correct


def test_unreadable_items_are_skipped_with_a_count():
    with pytest.warns(UserWarning, match="skipped 1 of 3"):
        examples = load_bigbench(FIXTURES / "bbh_date_understanding.json", "date_understanding")
    assert [e.answer for e in examples] == ["D", "B"]
    with pytest.raises(ValueError, match="item 2"):
        load_bigbench(FIXTURES / "bbh_date_understanding.json", "date_understanding", strict=True)


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_bigbench(tmp_path / "missing.json", "word_sorting")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_bigbench(bad, "word_sorting")
    with pytest.raises(ValueError, match="unknown task"):
        get_task("sudoku")


@pytest.mark.parametrize("task_name", TASK_NAMES)
def test_prepare_writes_disjoint_splits(tmp_path, task_name):
    cfg = {"source": "synthetic", "seed": 0, "train_size": 12, "val_size": 3, "test_seen_size": 4, "test_unseen_size": 4}
    splits = prepare_task(task_name, cfg, tmp_path)
    loaded = {name: load_split(tmp_path, name) for name in ("train", "val", "test")}
    assert loaded == splits
    questions = [e.question for rows in splits.values() for e in rows]
    assert len(questions) == len(set(questions)) == 23
    assert {e.split for e in splits["train"] + splits["val"]} == {"seen"}
    assert [e.split for e in splits["test"]].count("unseen") == 4
    assert sum(row["n"] for row in summary(splits)) == 23


def test_prepare_passes_task_options(tmp_path):
    cfg = {"source": "synthetic", "seed": 0, "train_size": 30, "val_size": 3, "test_seen_size": 4,
           "test_unseen_size": 4, "options": {"vocabulary_size": 120}}
    splits = prepare_task("word_sorting", cfg, tmp_path)
    vocabulary = set(get_task("word_sorting", vocabulary_size=120).words)
    assert {w for rows in splits.values() for e in rows for w in e.answer.split()} <= vocabulary


def test_prepare_from_a_bigbench_file(tmp_path):
    cfg = {"source": str(FIXTURES / "bbh_word_sorting.json"), "seed": 0, "train_size": 10, "val_size": 1,
           "test_seen_size": 1, "test_unseen_size": 5}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        splits = prepare_task("word_sorting", cfg, tmp_path)
    assert (len(splits["train"]), len(splits["val"]), len(splits["test"])) == (1, 1, 2)


def _date_file(path, items):
    stem = "Today is Christmas Eve of 1937. What is the date {} days ago in MM/DD/YYYY?"
    rows = []
    for days, extra in items:
        right = {10: "12/14/1937", 3: "12/21/1937", 5: "12/19/1937", 7: "12/17/1937"}[days]
        scores = {right: 1, "12/14/2026": 0, "12/14/1950": 0, "12/14/2007": 0, "07/14/1938": 0}
        rows.append({"input": stem.format(days), "target_scores": scores, **extra})
    path.write_text(json.dumps({"examples": rows}), encoding="utf-8")
    return path


def test_real_files_keep_the_split_promise_and_the_task_options(tmp_path):
    """Repeated items are kept once (no test question leaks into train); options reach the file's
    items; a malformed target_scores (list, string) is skipped and counted, not fatal."""
    path = _date_file(tmp_path / "task.json", [(10, {}), (3, {}), (10, {}), (5, {}), (7, {}), (3, {})])
    data = json.loads(path.read_text())
    data["examples"] += [{"input": "What day?", "target_scores": ["12/14/1937"]},
                         {"input": "What day?", "target_scores": "12/14/1937"}]
    path.write_text(json.dumps(data))
    with pytest.warns(UserWarning) as caught:
        examples = load_bigbench(path, "date_understanding", options={"option_letters": False})
    messages = " | ".join(str(w.message) for w in caught)
    assert "skipped 2 of 8 items" in messages and "2 repeated items" in messages
    assert len(examples) == 4 and len({e.question for e in examples}) == 4
    assert all("(A)" not in e.question and "/" in e.answer for e in examples)  # bare dates, as params say
    cfg = {"source": str(path), "seed": 0, "train_size": 10, "val_size": 1, "test_seen_size": 1,
           "test_unseen_size": 0, "options": {"option_letters": False}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        splits = prepare_task("date_understanding", cfg, tmp_path / "out")
    questions = [e.question for rows in splits.values() for e in rows]
    assert len(questions) == len(set(questions)) and all("/" in e.answer for rows in splits.values() for e in rows)


def test_unreadable_files_name_the_path(tmp_path):
    latin = tmp_path / "latin1.json"
    latin.write_bytes('{"examples": [{"input": "caf\xe9", "target": "x"}]}'.encode("latin-1"))
    with pytest.raises(ValueError, match="latin1.json is not UTF-8"):
        load_bigbench(latin, "word_sorting")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(ValueError, match="deep.json is not valid JSON"):
        load_bigbench(deep, "word_sorting")
    shape = tmp_path / "shape.json"
    shape.write_text('{"items": []}')
    with pytest.raises(ValueError, match="shape.json: expected"):
        load_bigbench(shape, "word_sorting")
