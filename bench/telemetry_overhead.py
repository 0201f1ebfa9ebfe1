"""Per-call cost of telemetry: the micro_session setup (no I/O) with four pass-through stages, measured with
telemetry off, metrics on, metrics + anomaly detection, and metrics + tracing (every span recorded and handed to a
batch processor whose exporter discards them; then without stage spans; then with every trace sampled out).

Prints the best (lowest) process CPU time per call over interleaved rounds, background analysis included.
Run: .venv/bin/python bench/telemetry_overhead.py [calls] [rounds]
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from bastion.core.contribution import Contribution, Resource
from bastion.core.gateway import Gateway
from bastion.pipeline.stage import BaseStage
from bastion.telemetry.config import TelemetryConfig
from bastion.telemetry.install import build_telemetry
from bastion.telemetry.tracing import Tracer
from micro_session import ECHO_CALL, InstantUpstream, initialized_session, instant_config


class Discard(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def stages() -> list[BaseStage]:
    out = []
    for name in ("authenticate", "authorize", "ratelimit", "guard"):
        stage = BaseStage()
        stage.name = name
        out.append(stage)
    return out


async def run(variant: str, n: int) -> float:
    gw = Gateway(instant_config(), stages=stages(), transports={"up": InstantUpstream})
    if variant != "off":
        anomaly = variant == "metrics+anomaly"
        telemetry = build_telemetry(TelemetryConfig.model_validate({"anomaly": {"enabled": anomaly}}), gw)
        gw.use(telemetry.contribution)
    if variant.startswith("metrics+tracing"):
        ratio = 0.0 if variant.endswith("sampled-out") else 1.0
        provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))
        provider.add_span_processor(BatchSpanProcessor(Discard(), max_queue_size=100_000))
        tracer = Tracer(provider, stage_spans=not variant.endswith("no-stage-spans"))
        gw.use(Contribution(tracer=tracer, resources=(Resource(name="tracer", close=tracer.aclose),)))
    await gw.start()
    call = await initialized_session(gw)
    for _ in range(500):
        await call("tools/call", ECHO_CALL)
    t0 = time.process_time()  # CPU time of this process: less noisy than wall time on a shared machine
    for _ in range(n):
        await call("tools/call", ECHO_CALL)
    for observer in gw.observers:  # background analysis is part of the cost
        flush = getattr(observer, "flush", None)
        if flush is not None:
            await flush()
    dt = time.process_time() - t0
    await gw.aclose()
    return dt / n * 1e6


async def main(n: int, rounds: int) -> None:
    variants = (
        "off",
        "metrics",
        "metrics+anomaly",
        "metrics+tracing",
        "metrics+tracing/no-stage-spans",
        "metrics+tracing/sampled-out",
    )
    best: dict[str, float] = {}
    for _ in range(rounds):  # interleaved, best of N: the machine is shared
        for variant in variants:
            us = await run(variant, n)
            best[variant] = min(best.get(variant, us), us)
    base = best["off"]
    for variant in variants:
        print(f"{variant:>31}: {best[variant]:6.1f} us CPU/call  (+{best[variant] - base:5.1f} us)")


if __name__ == "__main__":
    asyncio.run(
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 10000, int(sys.argv[2]) if len(sys.argv) > 2 else 3)
    )
