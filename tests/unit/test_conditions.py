from bmfleet.api.conditions import Cond, get_condition, is_true, set_condition


def test_transition_time_kept_while_status_unchanged():
    conds = set_condition([], Cond("Ready", "False", "Compiling", "0/2"), 1, now="2026-01-01T00:00:00Z")
    conds = set_condition(conds, Cond("Ready", "False", "Compiling", "1/2"), 2, now="2026-01-01T00:01:00Z")
    ready = get_condition(conds, "Ready")
    assert ready is not None
    assert ready["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert ready["message"] == "1/2"
    assert ready["observedGeneration"] == 2


def test_transition_time_moves_when_status_flips():
    conds = set_condition([], Cond("Ready", "False", "Compiling", "0/2"), 1, now="2026-01-01T00:00:00Z")
    conds = set_condition(conds, Cond("Ready", "True", "Compiled", "2/2"), 1, now="2026-01-01T00:05:00Z")
    assert get_condition(conds, "Ready")["lastTransitionTime"] == "2026-01-01T00:05:00Z"
    assert is_true(conds, "Ready")


def test_order_kept_and_new_types_appended_without_mutating_input():
    first = set_condition([], Cond("Ready", "False", "A", "a"), 1, now="t")
    both = set_condition(first, Cond("Stalled", "False", "B", "b"), 1, now="t")
    assert [c["type"] for c in both] == ["Ready", "Stalled"]
    assert len(first) == 1
    assert not is_true(both, "Stalled")
    assert not is_true(both, "Compiled")
