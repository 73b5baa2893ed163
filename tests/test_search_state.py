"""Resumable search state: determinism, kill and resume (evolution and random search), extension, and the
validated state file (corrupted, another config, errors naming the key and the value received)."""

import json
import os
import random

import pytest

from larq_mobisearch import search as S
from larq_mobisearch.nn.space import encode

from search_helpers import Killed, Recorder, budget_at, fit_m1, make_space, small_config


# ----------------------------------------------------------------------------------------------------------
# Determinism and resume


def test_same_seed_same_result_different_seed_different_run():
    space, flops = make_space("m1")
    budget = budget_at(space, flops, 0.2)
    runs = [
        S.evolutionary_search(space, S.FunctionEvaluator(fit_m1), [(flops, budget)], small_config(seed=s),
                              progress=False)
        for s in (4, 4, 5)
    ]
    assert runs[0].to_json() == runs[1].to_json()
    assert [c.genotype for c in runs[0].evaluated] != [c.genotype for c in runs[2].evaluated]


@pytest.mark.parametrize("selection", ["elitist", "generation"])
def test_killed_and_resumed_search_equals_uninterrupted_run(tmp_path, selection):
    space, flops = make_space("m1")
    budget = budget_at(space, flops, 0.2)
    cfg = small_config(iterations=8, seed=11, selection=selection)
    full_dir, resumed_dir = tmp_path / "full", tmp_path / "resumed"  # run directories, created on first save
    full = S.evolutionary_search(space, Recorder(fit_m1), [(flops, budget)], cfg, state_path=str(full_dir),
                                 context="ckpt-1", progress=False)

    killed = Recorder(fit_m1, fail_on_call=4)
    with pytest.raises(Killed):
        S.evolutionary_search(space, killed, [(flops, budget)], cfg, state_path=str(resumed_dir), context="ckpt-1",
                              progress=False)
    state = json.loads((resumed_dir / "search_state.json").read_text())
    assert state["version"] == 1 and state["generation"] == 3 and len(state["history"]) == 3
    assert len(state["cache"]) == len(killed.all) == 3 * 12

    fresh = Recorder(fit_m1)
    resumed = S.evolutionary_search(space, fresh, [(flops, budget)], cfg, state_path=str(resumed_dir),
                                    context="ckpt-1", progress=False)
    assert resumed.to_json() == full.to_json()
    assert len(fresh.batches) == 5  # generations 4..8 only
    assert not set(fresh.all) & set(killed.all)  # nothing evaluated twice across the kill
    # the final state files are identical as well (same RNG state, cache, history)
    assert json.loads((resumed_dir / "search_state.json").read_text()) == json.loads(
        (full_dir / "search_state.json").read_text()
    )
    assert not [p for p in os.listdir(resumed_dir) if p != "search_state.json"]  # no temp files left behind


def test_finished_search_is_not_reevaluated_and_can_be_extended(tmp_path):
    space, flops = make_space("m1")
    cons = [(flops, budget_at(space, flops, 0.3))]
    path = str(tmp_path / "search_state.json")
    first = S.evolutionary_search(space, Recorder(fit_m1), cons, small_config(iterations=4), state_path=path,
                                  progress=False)
    again = Recorder(fit_m1)
    rerun = S.evolutionary_search(space, again, cons, small_config(iterations=4), state_path=path, progress=False)
    assert again.batches == [] and rerun.to_json() == first.to_json()
    extended = S.evolutionary_search(space, Recorder(fit_m1), cons, small_config(iterations=7), state_path=path,
                                     progress=False)
    straight = S.evolutionary_search(space, Recorder(fit_m1), cons, small_config(iterations=7), progress=False)
    assert extended.to_dict() == straight.to_dict()
    assert len(extended.history) == 7


@pytest.mark.parametrize(
    "content,expected",
    [
        ("{not json", "not valid JSON"),
        ("", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"version": 1}', "missing keys"),
        ('{"version": 2, "config_hash": "x"}', "unsupported state version 2"),
    ],
)
def test_corrupted_state_file_is_a_clear_error_and_left_untouched(tmp_path, content, expected):
    path = tmp_path / "search_state.json"
    path.write_text(content)
    before = path.read_bytes()
    space, flops = make_space("m1")
    ev = Recorder(fit_m1)
    with pytest.raises(ValueError) as info:
        S.evolutionary_search(space, ev, [(flops, None)], small_config(), state_path=str(path), progress=False)
    message = str(info.value)
    assert str(path) in message and expected in message and "delete it" in message
    assert path.read_bytes() == before
    assert ev.batches == []


def test_state_with_matching_hash_but_broken_content_is_refused(tmp_path):
    space, flops = make_space("m1")
    path = tmp_path / "search_state.json"
    S.evolutionary_search(space, Recorder(fit_m1), [(flops, None)], small_config(iterations=2), state_path=str(path),
                          progress=False)
    for breakage in ("rng", "population", "cache"):
        data = json.loads(path.read_text())
        if breakage == "rng":
            data["rng_state"] = [3, [1, 2], None]
        elif breakage == "population":
            data["population"] = ["1-2-3"]
        else:
            data["cache"] = {"1-1-1": {"fitness": 0.0, "costs": {}}}
        broken = json.dumps(data)
        path.write_text(broken)
        with pytest.raises(S.SearchStateError, match="corrupted"):
            S.evolutionary_search(space, Recorder(fit_m1), [(flops, None)], small_config(iterations=3),
                                  state_path=str(path), progress=False)
        assert path.read_text() == broken


@pytest.mark.parametrize(
    "change,expected",
    [
        (dict(config=small_config(seed=1)), "search.seed: 0 in the file, 1 now"),
        (dict(config=small_config(mutation_prob=0.2)), "search.mutation_prob"),
        (dict(config=small_config(selection="generation")),
         "search.selection: 'elitist' in the file, 'generation' now"),
        (dict(context="supernet-ckpt-2"), "context"),
        (dict(budget_fraction=0.5), "budget"),
        (dict(module="m3"), "module"),
    ],
)
def test_state_from_a_different_config_is_refused_and_not_overwritten(tmp_path, change, expected):
    path = tmp_path / "search_state.json"

    def run(config=None, context="supernet-ckpt-1", budget_fraction=0.3, module="m1"):
        space, flops = make_space(module)
        return S.evolutionary_search(space, Recorder(fit_m1), [(flops, budget_at(space, flops, budget_fraction))],
                                     config or small_config(iterations=2), state_path=str(path), context=context,
                                     progress=False)

    run()
    before = path.read_bytes()
    with pytest.raises(ValueError) as info:
        run(**change)
    message = str(info.value)
    assert str(path) in message and "different search configuration" in message
    assert expected in message and "delete the file or use another run directory" in message
    assert path.read_bytes() == before


def test_state_file_content(tmp_path):
    space, flops = make_space("m1")
    path = tmp_path / "run" / "search_state.json"
    res = S.evolutionary_search(space, Recorder(fit_m1), [(flops, budget_at(space, flops, 0.3))],
                                small_config(iterations=3), state_path=str(path), context="ckpt", progress=False)
    data = json.loads(path.read_text())
    assert data["version"] == 1 and data["generation"] == 3
    assert data["config"]["context"] == "ckpt"
    assert data["config"]["space"]["candidates"] == [list(c) for c in space.candidates]
    assert data["best"]["genotype"] == encode(res.best_genotype)
    assert data["best"]["fitness"] == res.best_fitness
    assert len(data["cache"]) == res.num_evaluations
    entry = data["cache"][encode(res.best_genotype)]
    assert entry["fitness"] == res.best_fitness and entry["costs"] == {"flops": flops.cost(res.best_genotype)}
    assert [h["best"] for h in data["history"]] == [h["best"] for h in res.history]
    assert data["population"] == [encode(g) for g in [c.genotype for c in res.evaluated][-12:]]
    random.Random().setstate((data["rng_state"][0], tuple(data["rng_state"][1]), data["rng_state"][2]))




# ----------------------------------------------------------------------------------------------------------
# State file validation: the key at fault and the value received


def _saved_state(tmp_path, **kw):
    space, flops = make_space("m1")
    path = tmp_path / "search_state.json"
    S.evolutionary_search(space, Recorder(fit_m1), [(flops, None)], small_config(iterations=2), state_path=str(path),
                          progress=False)
    return space, flops, path, json.loads(path.read_text())


def _refusal(space, flops, path, data):
    path.write_text(json.dumps(data))
    before = path.read_bytes()
    ev = Recorder(fit_m1)
    with pytest.raises(S.SearchStateError) as info:
        S.evolutionary_search(space, ev, [(flops, None)], small_config(iterations=3), state_path=str(path),
                              progress=False)
    assert path.read_bytes() == before and ev.batches == []
    message = str(info.value)
    assert str(path) in message and "corrupted" in message and "delete it" in message
    return message


def test_state_errors_name_the_key_and_the_value_received(tmp_path):
    space, flops, path, data = _saved_state(tmp_path)
    first = next(iter(data["cache"]))

    broken = json.loads(json.dumps(data))
    broken["cache"][first]["fitness"] = "abc"
    assert f"cache.{first}.fitness" in (m := _refusal(space, flops, path, broken)) and "'abc'" in m

    broken = json.loads(json.dumps(data))
    broken["generation"] = -1
    assert "generation: Input should be greater than or equal to 0, received -1" in _refusal(space, flops, path, broken)

    broken = json.loads(json.dumps(data))
    broken["resume_from"] = 3  # unknown keys are refused, not ignored
    assert "resume_from: Extra inputs are not permitted, received 3" in _refusal(space, flops, path, broken)

    broken = json.loads(json.dumps(data))
    broken["cache"][first]["gen"] = 0
    assert f"cache.{first}.gen: Extra inputs are not permitted" in _refusal(space, flops, path, broken)

    broken = json.loads(json.dumps(data))
    broken["population"][0] = "1-x-2"
    assert "population[0]: Cannot parse genotype '1-x-2'" in _refusal(space, flops, path, broken)

    broken = json.loads(json.dumps(data))
    broken["cache"] = {"1-" + k: v for k, v in data["cache"].items()}
    broken["population"] = ["1-" + g for g in data["population"]]
    assert "genotype not in the search space" in _refusal(space, flops, path, broken)

    broken = json.loads(json.dumps(data))
    broken["cache"][first]["costs"] = {"latency": 1.0}
    assert f"cache.{first}.costs: has ['latency'], expected ['flops']" in _refusal(space, flops, path, broken)

    broken = json.loads(json.dumps(data))
    broken["history"] = broken["history"][:1]
    assert "history has 1 entries for 2 completed generations" in _refusal(space, flops, path, broken)


def test_state_of_an_older_format_is_refused_listing_the_new_keys(tmp_path):
    space, flops, path, data = _saved_state(tmp_path)
    old = json.loads(json.dumps(data))
    del old["config"]["method"], old["config"]["search"]["selection"]  # written before selection existed
    old["config_hash"] = "0" * 64
    path.write_text(json.dumps(old))
    with pytest.raises(S.SearchStateError) as info:
        S.evolutionary_search(space, Recorder(fit_m1), [(flops, None)], small_config(iterations=3),
                              state_path=str(path), progress=False)
    message = str(info.value)
    assert "different search configuration" in message
    assert "method: <missing> in the file, 'evolution' now" in message
    assert "search.selection: <missing> in the file, 'elitist' now" in message


# ----------------------------------------------------------------------------------------------------------
# Random search state


def test_killed_and_resumed_random_search_equals_uninterrupted_run(tmp_path):
    space, flops = make_space("m1")
    cons = [(flops, budget_at(space, flops, 0.2))]
    cfg = small_config(seed=5)
    full_dir, resumed_dir = tmp_path / "full", tmp_path / "resumed"
    full = S.random_search(space, Recorder(fit_m1), cons, cfg, num_samples=50, state_path=str(full_dir),
                           context="ckpt", progress=False)
    assert full.num_evaluations == 50 and [h["population"] for h in full.history] == [12, 12, 12, 12, 2]

    killed = Recorder(fit_m1, fail_on_call=3)  # two batches done, killed in the third
    with pytest.raises(Killed):
        S.random_search(space, killed, cons, cfg, num_samples=50, state_path=str(resumed_dir), context="ckpt",
                        progress=False)
    state = json.loads((resumed_dir / S.RANDOM_STATE_FILENAME).read_text())
    assert state["generation"] == 2 and len(state["cache"]) == len(killed.all) == 24
    assert state["config"]["method"] == "random"

    fresh = Recorder(fit_m1)
    resumed = S.random_search(space, fresh, cons, cfg, num_samples=50, state_path=str(resumed_dir), context="ckpt",
                              progress=False)
    assert resumed.to_json() == full.to_json()
    assert [len(b) for b in fresh.batches] == [12, 12, 2]  # the finished batches are not redone
    assert not set(fresh.all) & set(killed.all)
    assert (resumed_dir / S.RANDOM_STATE_FILENAME).read_text() == (full_dir / S.RANDOM_STATE_FILENAME).read_text()
    assert os.listdir(resumed_dir) == [S.RANDOM_STATE_FILENAME]

    again = Recorder(fit_m1)  # finished: nothing is evaluated again
    assert S.random_search(space, again, cons, cfg, num_samples=50, state_path=str(resumed_dir), context="ckpt",
                           progress=False).to_json() == full.to_json()
    assert again.batches == []


def test_random_search_can_be_extended_and_refuses_other_states(tmp_path):
    space, flops = make_space("m1")
    cons = [(flops, budget_at(space, flops, 0.2))]
    path = tmp_path / "random.json"
    S.random_search(space, Recorder(fit_m1), cons, small_config(), num_samples=30, state_path=str(path),
                    progress=False)
    extended = S.random_search(space, Recorder(fit_m1), cons, small_config(), num_samples=50, state_path=str(path),
                               progress=False)
    straight = S.random_search(space, Recorder(fit_m1), cons, small_config(), num_samples=50, progress=False)
    # the same genotypes in the same order (drawing does not depend on the batching); batches 12+12+6+12+8
    pairs = lambda res: [(c.genotype, c.fitness) for c in res.evaluated]  # noqa: E731
    assert pairs(extended) == pairs(straight)
    assert [h["population"] for h in extended.history] == [12, 12, 6, 12, 8]
    before = path.read_bytes()
    with pytest.raises(S.SearchStateError, match="search.seed: 0 in the file, 1 now"):
        S.random_search(space, Recorder(fit_m1), cons, small_config(), seed=1, num_samples=50, state_path=str(path),
                        progress=False)
    with pytest.raises(S.SearchStateError, match="method: 'random' in the file, 'evolution' now"):
        S.evolutionary_search(space, Recorder(fit_m1), cons, small_config(), state_path=str(path), progress=False)
    assert path.read_bytes() == before
    # settings the random search does not use do not enter its fingerprint
    S.random_search(space, Recorder(fit_m1), cons, small_config(mutation_prob=0.5, top_k=2), num_samples=50,
                    state_path=str(path), progress=False)
