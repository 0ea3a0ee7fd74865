"""Throughput judge: per-step (per-batch) seconds on the same device class, Mann-Whitney U plus a minimum effect.

Benchmark measurements (the suites' fixed rounds, with a machine-load reference) are preferred; records that come
without one (`harness run`) are judged on their own training steps, like against like only.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from harness.judging import stats
from harness.judging.comparability import machine_drift, throughput_why_not
from harness.core.evidence import BENCH, Evidence, Measurement, run_measurement
from harness.judging.judge import Judge, JudgeSettings, Key
from harness.judging.verdict import NOT_COMPARABLE, Verdict, not_comparable

PARTS = {"train": ("step_seconds", "train s/step"), "eval": ("batch_seconds", "eval s/batch")}


class ThroughputJudge(Judge):
    kind = "throughput"

    def collect(self, evidence: Evidence) -> dict[Key, Sequence[Measurement]]:
        found = evidence.latest_measurements()
        for key, records in evidence.latest_records().items():
            if (derived := run_measurement(records)) is not None:
                found[key] = [*found.get(key, []), derived]
        return found

    def judge_group(self, group: str, now: Sequence[Measurement], baseline: Sequence[Measurement],
                    settings: JudgeSettings) -> list[Verdict]:
        verdicts = []
        benched = any(m.source == BENCH for m in now)
        for measurement in now:
            if benched and measurement.source != BENCH:
                continue  # a benchmark of the same cell is the better witness
            label = "" if measurement.source == BENCH else " (fine-tuning run)"
            reference = next((b for b in baseline if b.device_class == measurement.device_class
                              and b.source == measurement.source), None)
            for part, result in measurement.parts.items():
                samples_key, metric = PARTS[part]
                metric += label
                if reference is None:
                    others = sorted({b.device_class for b in baseline if b.source == measurement.source})
                    elsewhere = f" (there is one for: {', '.join(others)})" if others else ""
                    verdicts.append(not_comparable(
                        group, self.kind, metric, f"no throughput baseline for device class "
                        f"{measurement.device_class}{elsewhere}: recorded, not judged; {settings.missing_hint}",
                        relative=True))
                    continue
                verdicts.append(self._judge_part(group, metric, samples_key, result, reference, measurement,
                                                 part, settings))
        return verdicts

    def _judge_part(self, group: str, metric: str, samples_key: str, now: Any, reference: Measurement,
                    measurement: Measurement, part: str, settings: JudgeSettings) -> Verdict:
        base = reference.parts.get(part) or {}
        why_not = throughput_why_not(reference, measurement)
        if not base and not why_not:
            why_not = f"the baseline has no {part} measurement; {settings.missing_hint}"
        if not why_not and measurement.source != BENCH and not (base.get("reference_seconds")
                                                                 and now.get("reference_seconds")):
            side = "the baseline's run" if not base.get("reference_seconds") else "this run"
            why_not = (f"{side} carries no machine-speed reference (records from before the harness measured one), "
                       "so machine drift cannot be told from a slowdown; re-record it to judge speed")
        why_not = why_not or machine_drift(base, now, tolerance=settings.speed_tolerance,
                                           busy_tolerance=settings.busy_tolerance)
        notes = []
        if base.get("samples_per_second") and now.get("samples_per_second"):
            notes.append(f"{base['samples_per_second']:.1f} -> {now['samples_per_second']:.1f} samples/s, "
                         f"{base.get('tokens_per_second') or 0:.0f} -> {now.get('tokens_per_second') or 0:.0f} "
                         "tokens/s")
        if base.get("reference_seconds") and now.get("reference_seconds"):
            drift = statistics.median(now["reference_seconds"]) / statistics.median(base["reference_seconds"]) - 1
            notes.append(f"machine reference {drift:+.1%}")
        if now.get("busy_cores") is not None:
            notes.append(f"other processes used {now['busy_cores']:.2f} cores now, {base.get('busy_cores', '?')} "
                         "at baseline")
        if measurement.source != BENCH:
            notes.append("timed inside fine-tuning runs")
        return stats.throughput_verdict(kind=self.kind, cell=group, metric=metric, baseline=base.get(samples_key) or [],
                                        candidate=now.get(samples_key) or [], alpha=settings.alpha,
                                        min_effect=settings.min_slowdown if measurement.source == BENCH
                                        else settings.min_slowdown_run, why_not=why_not, notes=notes)

    def baseline_items(self, evidence: Evidence) -> list[Measurement]:
        return [m for found in evidence.latest_measurements().values() for m in found if m.source == BENCH]

    def note(self, verdict: Verdict) -> str:
        if verdict.verdict == NOT_COMPARABLE:
            return verdict.detail
        return next((part for part in verdict.detail.split("; ") if "samples/s" in part), verdict.detail)
