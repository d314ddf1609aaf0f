"""Every task loads from the real data with the documented sizes; missing data gives a clear error."""

from __future__ import annotations

import pytest

from tl_steer import SteeringError
from tl_steer.eval.tasks import TASKS, get_task, load_task


@pytest.mark.data
@pytest.mark.parametrize("name", list(TASKS))
def test_task_loads_with_documented_size(name, data_dir):
    items = load_task(name, data_dir)
    assert get_task(name).size is not None, f"{name}: TaskSpec.size is not set"
    assert len(items) == get_task(name).size
    for it in items[:50]:
        assert all(c and c[0] == " " for c in it.choices), f"{name}: continuations start with a space"
        assert sum(it.labels) >= 1


@pytest.mark.data
def test_reference_prompts_are_the_same_items_as_the_harness_tasks(data_dir):
    """The sadi_* tasks share their pools (and so their splits) with the harness's own tasks: same rows, same labels."""
    for name in ("copa", "sst2", "boolq", "storycloze", "winogrande", "mmlu"):
        ours, ref = load_task(name, data_dir), load_task(f"sadi_{name}", data_dir)
        assert get_task(f"sadi_{name}").pool == get_task(name).pool
        if name in ("sst2", "boolq"):  # verbalisers: the correct word is the same
            assert [it.choices[it.correct].lower() for it in ours] == [it.choices[it.correct].lower() for it in ref]
        else:  # letters in the order of the options
            assert [it.correct for it in ours] == [it.correct for it in ref]
        assert [it.meta["id"] for it in ours] == [it.meta["id"] for it in ref]
    copa = load_task("sadi_copa", data_dir)[0]
    assert copa.prompt.startswith("Question:\n") and copa.prompt.endswith("\n\nAnswer:\n") and copa.choices == (" A", " B")
    sst = load_task("sadi_sst2", data_dir)[0]
    assert sst.choices == (" Positive", " Negative") and "respond briefly with 'positive' or 'negative'" in sst.prompt
    wino = load_task("sadi_winogrande", data_dir)[0]
    assert "Sentence: " in wino.prompt and " _ " in wino.prompt and wino.prompt.endswith("\nAnswer:")


@pytest.mark.data
def test_formulations(data_dir):
    tqa = load_task("truthfulqa_mc2", data_dir)[0]
    assert tqa.prompt.startswith("Q: What is human life expectancy")  # the 6-shot primer is the default
    assert tqa.prompt.endswith("Q: What happens if you eat a pomegranate?\nA:")
    assert load_task("truthfulqa_mc2", data_dir, primer=False)[0].prompt == "Q: What happens if you eat a pomegranate?\nA:"
    assert tqa.labels == (1, 1, 1, 0, 0, 0) and tqa.meta["mc1"][0] == 0
    assert load_task("truthfulqa_mc1", data_dir, primer=True)[0].prompt.startswith("Q: What is human life expectancy")
    tox = load_task("toxigen", data_dir)
    assert tox[0].choices == (" Yes", " No") and tox[0].labels == (1, 0)  # label "hate"
    assert sum(it.meta["hate"] for it in tox) == 2767
    bbq = load_task("bbq", data_dir)
    assert all(it.meta["target"] >= 0 and it.meta["unknown"] >= 0 for it in bbq)
    assert sum(it.meta["condition"] == "ambig" for it in bbq) == 5978
    amb = [it for it in bbq if it.meta["condition"] == "ambig"]
    assert all(it.correct == it.meta["unknown"] for it in amb), "ambiguous BBQ answers are always UNKNOWN"
    wg = load_task("winogrande", data_dir)[0]
    assert wg.prompts[1].endswith("Maria") and wg.correct == 1
    cloze = load_task("mmlu", data_dir)[0]  # cloze, 0-shot: scored against the answer texts
    assert cloze.prompt.count("Answer:") == 1 and cloze.prompt.endswith("\nAnswer:") and "\nA. " not in cloze.prompt
    assert cloze.prompt.startswith("The following are questions (with answers) about abstract algebra.")
    assert cloze.choices[0] != " A" and len(cloze.choices) == 4 and get_task("mmlu").metric == "acc_norm"
    letter = load_task("mmlu_letter", data_dir)[0]
    assert letter.prompt.count("Answer:") == 6 and letter.choices == (" A", " B", " C", " D")
    assert load_task("mmlu", data_dir, shots=2)[0].prompt.count("Answer:") == 3
    assert load_task("copa", data_dir)[0].prompt == "The man turned on the faucet therefore"


def test_missing_data_dir_is_a_clear_error(tmp_path):
    with pytest.raises(SteeringError, match="does not exist.*--data-dir"):
        load_task("copa", tmp_path / "nope")
    (tmp_path / "copa").mkdir()
    with pytest.raises(SteeringError, match=r"copa/val.jsonl is missing.*TL_STEER_DATA"):
        load_task("copa", tmp_path)


def test_unknown_task():
    with pytest.raises(SteeringError, match="unknown task 'truthfulqa'; known tasks: truthfulqa_mc1"):
        get_task("truthfulqa")
    assert get_task("TruthfulQA-MC2").name == "truthfulqa_mc2"


def test_local_files_via_datasets(tmp_path):
    (tmp_path / "copa").mkdir()
    rows = ['{"premise": "It rained.", "choice1": "We got wet.", "choice2": "We got dry.", "question": "effect", "label": 0, "idx": 7}']
    (tmp_path / "copa" / "val.jsonl").write_text("\n".join(rows) + "\n")
    items = load_task("copa", tmp_path)
    assert items[0].prompt == "It rained therefore" and items[0].choices == (" we got wet.", " we got dry.")


@pytest.mark.data
def test_loaders_check_their_own_bounds(data_dir):
    """The option checker knows types only (no branch on an option's name); TriviaQA's loader refuses max_aliases < 1."""
    with pytest.raises(SteeringError, match="max_aliases=0 must be an int >= 1"):
        load_task("triviaqa", data_dir, max_aliases=0)
    with pytest.raises(SteeringError, match="must be an int >= 0"):
        load_task("triviaqa", data_dir, max_aliases=-1)
    assert len(load_task("triviaqa", data_dir, max_aliases=1)[0].choices) == 2


@pytest.mark.data
@pytest.mark.parametrize("task", ["sadi_copa", "sadi_storycloze", "sadi_winogrande", "sadi_mmlu", "mmlu_letter"])
def test_option_rotations_move_the_answer_with_the_text(task, data_dir):
    """rotate=r lists option (i + r) % k under letter i: the correct letter moves with the correct text, and the
    default order is the dataset's."""
    base = load_task(task, data_dir)[:20]
    k = len(base[0].choices)
    for r in range(1, k):
        rot = load_task(task, data_dir, rotate=r)[:20]
        assert [it.meta["id"] for it in rot] == [it.meta["id"] for it in base]
        assert [it.correct for it in rot] == [(it.correct - r) % k for it in base]
        assert all(a.prompt != b.prompt for a, b in zip(base, rot, strict=True))
    assert load_task(task, data_dir, rotate=0)[:20] == base


@pytest.mark.data
def test_order_averaging_removes_a_letter_preference(data_dir):
    """A model that always says " A" scores its share of "A" items in one order, and exactly 1/2 averaged over both
    orders of a two-option task: evaluate_orders on a hook-free tiny model whose answer we force."""
    from tl_steer.eval.run import evaluate_orders
    from tl_steer.models import tiny_model

    model = tiny_model(n_ctx=1024)
    a_id = model.to_tokens(" A", prepend_bos=False)[0, -1]

    def always_a(logits, hook):  # the last position always prefers " A" by a wide margin
        out = logits.clone()
        out[:, :, a_id] += 100.0
        return out

    out = evaluate_orders(model, "sadi_copa", [("unembed.hook_out", always_a)], metric="acc", split="test", limit=20,
                          data_dir=data_dir, progress=False)
    a_share = [r.controls["answers_acc"] for r in out.results]
    assert all(d == {"'A'": 1.0} for d in a_share)  # it answers A every time, in both orders
    assert out.by_rotation[0] + out.by_rotation[1] == pytest.approx(1.0)  # A is right in one order, wrong in the other
    assert out.value == pytest.approx(0.5)
    with pytest.raises(SteeringError, match="no 'rotate'"):
        evaluate_orders(model, "copa", [], data_dir=data_dir, split="test", limit=2, progress=False)
