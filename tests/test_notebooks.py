"""Notebooks run under papermill, with the project's kernel, from the repository root."""

import json
from pathlib import Path

import papermill as pm
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_source_notebooks_are_clean_and_parameterized(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "commit notebooks without outputs"
    assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in code), "needs a cell tagged 'parameters'"


def test_data_prep_notebook_runs(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(
        "data:\n  source: synthetic\n  seed: 0\n  train_size: 6\n  val_size: 2\n  test_seen_size: 2\n"
        "  test_unseen_size: 2\n"
    )
    out = tmp_path / "executed.ipynb"
    pm.execute_notebook(
        str(ROOT / "notebooks" / "01_data_prep.ipynb"), str(out), kernel_name="tripost", cwd=str(ROOT),
        parameters={"task": "word_sorting", "params_file": str(params), "out_dir": str(tmp_path / "data")},
        progress_bar=False,
    )
    assert (tmp_path / "data" / "test.jsonl").read_text().count("\n") == 4
    executed = out.read_text()
    assert "=== bucket" in executed
