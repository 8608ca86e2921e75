"""Configuration merging: a nested section whose name changes is replaced, not merged key by key."""

from clss.config import merge_dicts, resolve_config


def test_a_renamed_section_replaces_the_old_one_and_a_same_name_one_merges():
    base = {"model": {"name": "mlp", "hidden": [4], "dropout": 0.1}, "steps": 3}
    assert merge_dicts(base, {"model": {"name": "other", "width": 2}}) == {
        "model": {"name": "other", "width": 2}, "steps": 3}
    assert merge_dicts(base, {"model": {"name": "mlp", "dropout": 0.2}}) == {
        "model": {"name": "mlp", "hidden": [4], "dropout": 0.2}, "steps": 3}
    assert merge_dicts(base, {"model": {"dropout": 0.3}})["model"] == {"name": "mlp", "hidden": [4],
                                                                       "dropout": 0.3}


def test_switching_the_schedule_drops_the_other_schedules_keys():
    cfg = resolve_config({"schedule": {"name": "step", "step_size": 5}}, {"schedule": {"name": "cosine"}})
    assert cfg.schedule == {"name": "cosine"}
