"""The arithmetic of benchmarks/search_efficiency.py on hand-made trial lists (no training): which
trials count, the best-so-far curve, the time to reach a target, medians over seeds, the goal."""

from __future__ import annotations

import pytest

from benchmarks.search_efficiency import (
    Trial,
    best_so_far,
    final_best,
    goal,
    median_best,
    median_time,
    record,
    summary_table,
    time_to_reach,
)

BUDGET, MAX_PARAMS = 100.0, 200_000


def done(finished: float, val_acc: float, params: int = 100_000, status: str = "completed") -> Trial:
    return Trial(finished, status, val_acc, params)


def test_only_completed_trials_within_both_budgets_count():
    trials = [
        done(10, 0.30),
        done(20, 0.50, params=300_000),  # over the parameter budget (the plugin trains it)
        done(30, 0.45, status="pruned"),  # stopped early: not a search's result
        done(40, 0.40),
        done(50, 0.35),  # not better: no new point
        done(120, 0.60),  # after the time budget
        Trial(60, "diverged", None, 100_000),
    ]
    curve = best_so_far(trials, BUDGET, MAX_PARAMS)
    assert curve == [(10, 0.30), (40, 0.40)]
    assert final_best(curve) == 0.40


def test_curve_is_in_time_order_whatever_the_folder_order():
    trials = [done(40, 0.5), done(10, 0.2), done(25, 0.4)]
    assert best_so_far(trials, BUDGET, MAX_PARAMS) == [(10, 0.2), (25, 0.4), (40, 0.5)]


def test_a_search_with_nothing_counted_has_no_best():
    curve = best_so_far([done(10, 0.9, params=500_000)], BUDGET, MAX_PARAMS)
    assert curve == [] and final_best(curve) is None
    assert time_to_reach(curve, 0.1) is None


def test_time_to_reach_is_the_first_point_at_or_above_the_target():
    curve = [(10, 0.30), (40, 0.40), (70, 0.55)]
    assert time_to_reach(curve, 0.40) == 40  # equal reaches it
    assert time_to_reach(curve, 0.41) == 70
    assert time_to_reach(curve, 0.25) == 10
    assert time_to_reach(curve, 0.56) is None
    assert time_to_reach(curve, None) is None  # the plugin found nothing: no target


def test_a_seed_not_reached_counts_as_infinitely_late():
    assert median_time([10, 30, None]) == 30
    assert median_time([10, None, None]) is None
    assert median_time([20, 40]) == 30
    assert median_best([0.3, None, 0.5]) == pytest.approx(0.4)
    assert median_best([None]) is None


@pytest.mark.parametrize(
    "ours_times, plugin_times, ours_best, plugin_best, met",
    [
        ([20, 25, 30], [60, 80, 90], 0.5, 0.4, True),
        ([50, 35, 30], [60, 60, 90], 0.5, 0.4, False),  # median 35 > half of 60
        ([50, 30, 20], [60, 60, 90], 0.5, 0.4, True),  # median 30: exactly half is enough
        ([20, 25, 30], [60, 80, 90], 0.4, 0.4, False),  # not higher
        ([20, None, None], [60, 80, 90], 0.5, 0.4, False),  # most seeds never reach it
        ([20, 25, 30], [60, 80, 90], 0.5, None, True),  # the plugin found nothing within budget
    ],
)
def test_goal(ours_times, plugin_times, ours_best, plugin_best, met):
    assert goal(ours_times, plugin_times, ours_best, plugin_best)[0] is met


def test_summary_table_times_each_method_against_the_plugin_of_the_same_seed():
    results = {
        ("ours", 0): [done(10, 0.30), done(20, 0.50), done(25, 0.2, status="pruned")],
        ("plugin", 0): [done(15, 0.20), done(60, 0.45), done(70, 0.9, params=900_000)],
        ("random", 0): [done(30, 0.45)],
        ("ours", 1): [done(5, 0.40)],
        ("plugin", 1): [done(50, 0.60)],
        ("random", 1): [],
    }
    table, curves, (met, sentence) = summary_table(results, [0, 1], BUDGET, MAX_PARAMS)
    rows = {(r["method"], r["seed"]): r for r in table.to_dict("records")}
    assert rows[("ours", "0")]["s to plugin's best"] == 20  # the plugin's seed-0 best is 0.45
    assert rows[("plugin", "0")]["s to plugin's best"] == 60
    assert rows[("plugin", "0")]["over budget, trained"] == 1
    assert rows[("plugin", "0")]["best val_acc"] == 0.45  # the 900k model does not count
    assert rows[("ours", "0")]["pruned"] == 1
    assert rows[("random", "0")]["s to plugin's best"] == 30
    assert rows[("ours", "median")]["s to plugin's best"] is None  # seed 1 never reached 0.60
    assert rows[("plugin", "median")]["s to plugin's best"] == 55
    assert curves[("random", 1)] == []
    assert not met and "not reached" in sentence


def test_record_replaces_its_own_section_and_keeps_the_others(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\n## Sizing\n\nold sizing\n")
    record("## Search efficiency: first\n\nrow 1\n", results)
    assert results.read_text() == "# Results\n\n## Sizing\n\nold sizing\n\n## Search efficiency: first\n\nrow 1\n"
    results.write_text(results.read_text() + "\n## Later\n\nkept\n")
    record("## Search efficiency: second\n\nrow 2\n", results)
    text = results.read_text()
    assert "row 1" not in text and text.count("## Search efficiency") == 1
    assert text.endswith("## Search efficiency: second\n\nrow 2\n\n## Later\n\nkept\n")
    assert "old sizing" in text
