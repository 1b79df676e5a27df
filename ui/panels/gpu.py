"""GPU & engine: per-GPU utilisation, memory, power, temperature; vLLM's queue and caches."""

from __future__ import annotations

import streamlit as st

from ui.common import query, show, time_chart
from ui.window import Window

TITLE = "GPU & engine"
ICON = ":material/memory:"
PATH = "gpu"


def render(w: Window) -> None:
    st.title("GPU & engine")
    gpus = query("gpu_series", w)
    if gpus.empty:
        last = query("last_gpu_sample")
        if last is None:
            st.info(
                "No GPU detected on this host: the collector polls NVIDIA GPUs through "
                "NVML and has never found one here. On a GPU machine, GPU utilisation, "
                "memory, power and temperature appear here."
            )
        else:
            st.info(
                f"No GPU samples in this range (the last one is from {last:%Y-%m-%d %H:%M} UTC)."
            )
    else:
        left, right = st.columns(2)
        with left:
            show(time_chart(gpus, "utilization_pct", "GPU utilisation", "% busy", color="gpu"))
            show(time_chart(gpus, "power_w", "Power draw", "watts", color="gpu"))
        with right:
            show(time_chart(gpus, "memory_used_gib", "Memory used (max)", "GiB", color="gpu"))
            show(time_chart(gpus, "temperature_c", "Temperature (max)", "°C", color="gpu"))

    st.subheader("vLLM engine")
    engine = query("engine_series", w)
    if engine.empty:
        st.info(
            "No vLLM engine metrics in this range. The collector scrapes the /metrics of "
            "the engines `inferwatch serve` registers, or those in "
            "INFERWATCH_COLLECTOR__ENGINES."
        )
        return
    left, right = st.columns(2)
    with left:
        queue = engine.melt(
            id_vars=["time", "model"],
            value_vars=["requests_running", "requests_waiting"],
            var_name="state",
            value_name="requests",
        )
        queue["series"] = queue["model"] + " " + queue["state"].str.replace("requests_", "")
        show(
            time_chart(
                queue, "requests", "Requests running and waiting", "requests", color="series"
            )
        )
        show(
            time_chart(
                engine,
                "prefix_cache_hit_pct",
                "Prefix-cache hit rate",
                "% of queries",
                color="model",
            )
        )
        show(
            time_chart(
                engine,
                "generation_tokens_per_s",
                "Generation throughput",
                "tokens / s",
                color="model",
            )
        )
    with right:
        show(
            time_chart(engine, "kv_cache_usage_pct", "KV-cache usage", "% of blocks", color="model")
        )
        show(time_chart(engine, "preemptions_per_s", "Preemptions", "per second", color="model"))
        if engine["spec_decode_acceptance_pct"].notna().any():
            show(
                time_chart(
                    engine,
                    "spec_decode_acceptance_pct",
                    "Speculative decoding acceptance",
                    "% of draft tokens",
                    color="model",
                )
            )
        else:
            st.caption("Speculative decoding is off on these engines (no draft tokens).")
