"""The one stable hash and the one nested-dict differ, shared by the config, the run directory and the search
state files."""

import hashlib

import pytest

from larq_mobisearch.config import config_hash
from larq_mobisearch.fingerprint import MISSING, canonical_json, diff_keys, stable_hash
from larq_mobisearch.pipeline.rundir import describe_changes


def test_stable_hash_is_sha256_of_canonical_json():
    obj = {"b": "x", "a": [1, 2.5, None, True], "c": {"z": 1, "y": [{"k": "é"}]}}
    text = '{"a":[1,2.5,null,true],"b":"x","c":{"y":[{"k":"\\u00e9"}],"z":1}}'
    assert canonical_json(obj) == text
    assert stable_hash(obj) == hashlib.sha256(text.encode()).hexdigest()
    assert stable_hash(obj, 12) == stable_hash(obj)[:12]
    assert stable_hash({"x": 1, "y": 2}) == stable_hash({"y": 2, "x": 1})
    assert config_hash(obj) == stable_hash(obj)  # the config's hash is this one
    with pytest.raises(ValueError):
        stable_hash({"x": float("nan")})


def test_diff_keys_reports_each_differing_leaf():
    a = {"search": {"seed": 0, "top_k": 10}, "space": {"candidates": [[1, 2], [1]]}, "old": 1,
         "constraints": [{"name": "flops", "budget": 1.0}], "none": None}
    b = {"search": {"seed": 1, "top_k": 10}, "space": {"candidates": [[1, 2], [1, 2]]}, "new": 2,
         "constraints": [{"name": "flops", "budget": 2.0}, {"name": "latency", "budget": None}]}
    assert diff_keys(a, b) == [
        ("constraints[0].budget", 1.0, 2.0),
        ("constraints[1]", MISSING, {"name": "latency", "budget": None}),
        ("new", MISSING, 2),
        ("none", None, MISSING),  # a key set to None differs from a missing key
        ("old", 1, MISSING),
        ("search.seed", 0, 1),
        ("space.candidates", [[1, 2], [1]], [[1, 2], [1, 2]]),
    ]
    assert diff_keys(a, a) == [] and diff_keys(1, 2) == [("", 1, 2)]
    assert repr(MISSING) == "<missing>"


def test_run_directory_differences_use_the_same_differ():
    saved = {"search": {"population": 50, "selection": "elitist"}, "data": {"name": "digits"}}
    now = {"search": {"population": 6}, "data": {"name": "digits"}}
    assert describe_changes(saved, now) == [
        "search.population: 50 in the run directory, 6 now",
        "search.selection: 'elitist' in the run directory, <missing> now",
    ]
