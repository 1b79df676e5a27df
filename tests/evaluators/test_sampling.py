"""Sampling decisions: fixed by the trace id, nested across rates, errors always, budgets."""

from __future__ import annotations

from evaluators.sampling import Policy, draw


def test_the_draw_is_fixed_by_the_trace_id_and_uniform() -> None:
    assert draw("4bf92f3577b34da6a3ce929d0e0e4736") == draw("4bf92f3577b34da6a3ce929d0e0e4736")
    draws = [draw(f"{i:032x}") for i in range(20_000)]
    assert min(draws) >= 0.0 and max(draws) < 1.0
    assert abs(sum(d < 0.1 for d in draws) / len(draws) - 0.1) < 0.01


def test_rates_are_nested_and_errors_are_always_scored() -> None:
    policy = Policy(("toxicity", "judge"), base_rate=0.5, rates={"judge": 0.05})
    traces = [f"{i:032x}" for i in range(5000)]
    toxicity = {t for t in traces if ("toxicity", "sampled") in policy.decide(t)}
    judge = {t for t in traces if ("judge", "sampled") in policy.decide(t)}
    assert judge < toxicity  # every judged request is also toxicity-scored
    assert 0.45 < len(toxicity) / 5000 < 0.55 and 0.03 < len(judge) / 5000 < 0.07
    unsampled = next(t for t in traces if t not in toxicity)
    assert policy.decide(unsampled) == []
    assert policy.decide(unsampled, failed=True) == [("toxicity", "error"), ("judge", "error")]


def test_budgets_cap_an_evaluator_per_minute() -> None:
    policy = Policy(("judge",), budgets_per_minute={"judge": 10})
    assert policy.within_budget("judge", 9) and not policy.within_budget("judge", 10)
    assert policy.within_budget("toxicity", 10_000)  # no budget set
