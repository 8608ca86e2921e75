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


def test_users_tables_train_without_the_labelled_contrastive_term_unless_asked():
    """The csv preset turns the labelled Ordinal Entropy term off for the methods that have it (measured:
    docs/benchmarks.md); a user's own setting wins, and the papers' protocols keep it."""
    from clss.methods import METHODS
    from clss.methods.supervised import SupervisedParams

    for method in ("supervised", "fullysupervised", "clss", "gclss"):
        cfg = resolve_config({}, {"dataset": "csv:table.csv", "target": "y", "method": method})
        assert cfg.method_params["contrastive"] == "none", method
        assert SupervisedParams().contrastive == "oe"  # the default outside the preset
        mine = resolve_config({"method_params": {"contrastive": "oe"}},
                              {"dataset": "csv:table.csv", "target": "y", "method": method})
        assert mine.method_params["contrastive"] == "oe"
    # methods without the option get nothing from the preset
    assert "contrastive" not in resolve_config({}, {"dataset": "csv:t.csv", "target": "y",
                                                    "method": "rnc"}).method_params
    assert "contrastive" not in specs_keys(METHODS["rnc"])
    for dataset in ("operator-sde", "diabetes"):
        cfg = resolve_config({}, {"dataset": dataset, "method": "gclss"})
        assert cfg.method_params.get("contrastive", "oe") == "oe"


def specs_keys(cls):
    from clss.schema import specs_of

    return set(specs_of(cls.Params))
