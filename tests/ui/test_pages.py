"""Every page through Streamlit's AppTest against a real, seeded Postgres: renders without an
exception, shows the seeded figures, follows the filters, and says what to do when empty."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from tests.ui.conftest import Seeded
from tests.ui.seeding import ANSWER, MODEL_B

APP = Path(__file__).parents[2] / "ui" / "app.py"
TIMEOUT_S = 60


def _page_script(path: str) -> None:
    """What ui/app.py does for one page (AppTest cannot switch between callable pages)."""
    from ui.panels import run_page

    run_page(path)


def page(path: str, url: str, monkeypatch: pytest.MonkeyPatch, **query: str) -> AppTest:
    monkeypatch.setenv("INFERWATCH_DATABASE_URL", url)
    monkeypatch.setenv("INFERWATCH_ALERTING__PORT", "9")  # no alert engine: a refused port
    at = AppTest.from_function(_page_script, args=(path,), default_timeout=TIMEOUT_S)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    parts: list[Any] = [*at.title, *at.subheader, *at.markdown, *at.caption, *at.info]
    parts += [*at.success, *at.warning, *at.error, *at.text, *at.code]
    return "\n".join(str(p.value) for p in parts)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_the_app_opens_on_the_overview(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERWATCH_DATABASE_URL", seeded.url)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S).run()
    assert not at.exception
    assert "Overview" in [t.value for t in at.title]
    assert metrics(at)["Firing alerts"] == "1"


def test_overview(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    at = page("overview", seeded.url, monkeypatch)
    shown = metrics(at)
    # 160 requests in the last hour; every 10th of the 120 SmolLM2 requests failed.
    assert shown["Request rate"] == f"{160 / 60:.2f} req/min"
    assert shown["Error rate"] == f"{100 * 12 / 160:.1f} %"
    assert shown["TTFT p99"].replace(",", "").startswith(("39", "40", "41", "42"))  # 4,000 ms ±5 %
    assert shown["Flagged: toxicity"] == f"{100 * 20 / 160:.1f} %"
    assert shown["Thumbs up"] == "50.0 %"
    assert shown["Firing alerts"] == "1"
    assert shown["Cost / hour"].startswith("$")
    assert "TTFTHigh" in at.dataframe[0].value["rule"].tolist()


def test_model_filter_changes_the_overview(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    at = page("overview", seeded.url, monkeypatch)
    at.sidebar.multiselect(key="models").select(MODEL_B).run()
    shown = metrics(at)
    assert shown["Request rate"] == f"{40 / 60:.2f} req/min"
    assert shown["Error rate"] == "0.0 %"


def test_latency(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    at = page("latency", seeded.url, monkeypatch)
    assert "Where the time goes" in texts(at)
    assert len(at.get("vega_lite_chart")) == 3
    at.segmented_control(key="metric").set_value("Queue time").run()
    assert not at.exception
    assert "Queue time: p50, p95, p99" in str(at.get("vega_lite_chart")[0].proto.spec)


def test_cost(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    at = page("cost", seeded.url, monkeypatch)
    shown = metrics(at)
    assert float(shown["Cost in range"].lstrip("$")) > 0
    by_model = at.dataframe[0].value.set_index("model").to_dict("index")
    # llama-3-8b has a token price; SmolLM2 none, so it carries the H100's hours.
    assert by_model[MODEL_B]["token_cost_usd"] > 0
    assert by_model[MODEL_B]["gpu_cost_usd"] == 0
    assert by_model["SmolLM2-135M-Instruct"]["gpu_cost_usd"] > 0


def test_quality(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    at = page("quality", seeded.url, monkeypatch)
    shown = metrics(at)
    assert (shown["Thumbs up"], shown["Thumbs down"]) == ("16", "16")
    frames = [d.value for d in at.dataframe]
    worst = next(f for f in frames if "evaluator" in f and "score" in f)
    assert set(worst["score"]) == {0.9}
    comments = next(f for f in frames if "comment" in f)
    assert set(comments["comment"]) == {"wrong answer"}


def test_gpu_and_engine(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    at = page("gpu", seeded.url, monkeypatch)
    assert "No GPU detected" not in texts(at)
    assert len(at.get("vega_lite_chart")) >= 9


def test_traces_filter_and_detail(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    at = page("traces", seeded.url, monkeypatch)
    assert len(at.dataframe[0].value) == 160
    at.selectbox(key="status").select("error").run()
    assert len(at.dataframe[0].value) == 12
    at.selectbox(key="status").select("any").run()
    at.text_input(key="search").input("eiffel").run()
    found = at.dataframe[0].value
    assert found["trace_id"].tolist() == [seeded.known_trace]

    at = page("traces", seeded.url, monkeypatch, trace=seeded.known_trace)
    shown = texts(at)
    assert seeded.known_trace in shown
    assert ANSWER in shown
    assert "Span waterfall" in str(at.get("vega_lite_chart")[0].proto.spec)


def test_alerts(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    at = page("alerts", seeded.url, monkeypatch)
    frames = [d.value for d in at.dataframe]
    assert frames[0]["rule"].tolist() == ["TTFTHigh"]
    rules = next(f for f in frames if "condition" in f)
    assert "TTFTHigh" in rules["rule"].tolist()
    assert "alert engine is not answering" in texts(at)
    assert next(f for f in frames if "matchers" in f)["comment"].tolist() == ["maintenance"]


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("overview", "No requests in this time range yet"),
        ("latency", "No requests in this time range yet"),
        ("cost", "No requests in this time range yet"),
        ("quality", "No evaluations in this range"),
        ("gpu", "No GPU detected on this host"),
        ("traces", "No requests in this time range yet"),
        ("alerts", "No alert is pending or firing"),
    ],
)
def test_empty_states(db_url: str, monkeypatch: pytest.MonkeyPatch, path: str, says: str) -> None:
    at = page(path, db_url, monkeypatch)
    assert says in texts(at)


def test_without_a_database_the_app_says_how_to_start_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INFERWATCH_DATABASE_URL", raising=False)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S).run()
    assert not at.exception
    assert "start the dashboard with `inferwatch ui`" in at.error[0].value
