"""llmpulse drift vs Evidently on the same windows: detection per shift, false positives, runtime.

    .venv/bin/python bench/drift_vs_evidently.py [--pairs 20] [--sizes 500,5000]

Window pairs come from simulated support-bot/answer traffic (analyzers/drift/shifts.py: the documented
shift catalogue). Each pair is judged by llmpulse (`group_verdicts`: every feature, BH, effect thresholds;
featurization and descriptors computed from scratch per pair, no caches) and written to parquet; Evidently
(DataDriftPreset with numeric, categorical and text columns: its defaults pick K-S/chi²/Z below 1,000 rows,
Wasserstein/JS at 0.1 above, and the text domain classifier) judges the same parquet files right after, in
a worker process of its own venv (.llmpulse/venvs/evidently, created here with pip: Evidently pins many
dependencies), so both tools' times of a pair are taken under the same machine load. Runtime is the
judgement alone (llmpulse: `group_verdicts`; Evidently: `Report.run`), after one untimed warm-up pair per
window size for each tool. A pair counts as flagged by Evidently when any column drifted; a shift counts as detected
by llmpulse when the verdict of the shift's direction drifted, a null pair as a false positive when any
direction drifted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analyzers.drift import descriptors  # noqa: E402
from analyzers.drift import shifts as S  # noqa: E402
from analyzers.drift.detect import DriftConfig, group_verdicts  # noqa: E402

VENV = ROOT / ".llmpulse" / "venvs" / "evidently"
NUMERIC = ["input_tokens", "output_tokens", "input_chars", "output_chars"]
CATEGORICAL = ["finish_reason", "model", "provider", "error_type", "tool"]
TEXT = ["input_text", "output_text"]

# A worker in Evidently's venv: one line in (the parquet paths of a pair), one line out (its verdicts and the
# time of the report alone), so each pair is judged by both tools back to back, under the same machine load.
EVIDENTLY_WORKER = r'''
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import pandas as pd
from evidently import Dataset, DataDefinition, Report
from evidently.presets import DataDriftPreset
spec = json.loads(sys.argv[1])
dd = DataDefinition(numerical_columns=spec["numeric"], categorical_columns=spec["categorical"],
                    text_columns=spec["text"])
for line in sys.stdin:
    ref_path, cur_path = json.loads(line)
    ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
    t = time.perf_counter()
    try:
        snap = Report([DataDriftPreset()]).run(Dataset.from_pandas(cur, data_definition=dd),
                                               Dataset.from_pandas(ref, data_definition=dd))
        metrics = snap.dict()["metrics"]
        count = next(m["value"]["count"] for m in metrics if "DriftedColumnsCount" in str(m.get("metric_name")))
        share = next(m["value"]["share"] for m in metrics if "DriftedColumnsCount" in str(m.get("metric_name")))
        out = {"any": count > 0, "dataset": share >= 0.5, "seconds": time.perf_counter() - t}
    except Exception as exc:
        out = {"any": None, "dataset": None, "seconds": time.perf_counter() - t, "error": str(exc)[:200]}
    print("RESULT " + json.dumps(out), flush=True)
'''


class Evidently:
    """The worker process: `judge(ref, cur)` -> Evidently's verdicts on one pair."""

    def __init__(self, python: Path, log: Path) -> None:
        spec = {"numeric": NUMERIC, "categorical": CATEGORICAL, "text": TEXT}
        self.log = log
        self.proc = subprocess.Popen([str(python), "-c", EVIDENTLY_WORKER, json.dumps(spec)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=log.open("w"), text=True)

    def judge(self, ref_path: Path, cur_path: Path) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps([str(ref_path), str(cur_path)]) + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith("RESULT "):
                return json.loads(line[len("RESULT "):])
        raise RuntimeError(f"the Evidently worker stopped; its log: {self.log}")

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def ensure_venv() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "evidently", "pandas<3", "pyarrow"],
                       check=True)
    return python


def tabular(cols: S.Columns) -> S.Columns:
    """What a tabular tool sees: raw columns, lengths, tool name; no llmpulse descriptors."""
    return {
        "input_tokens": cols["input_tokens"], "output_tokens": cols["output_tokens"],
        "input_chars": [len(t) for t in cols["input_text"]], "output_chars": [len(t) for t in cols["output_text"]],
        "finish_reason": [v or "(none)" for v in cols["finish_reason"]], "model": cols["model"],
        "provider": cols["provider"], "error_type": [v or "(none)" for v in cols["error_type"]],
        "tool": [descriptors.tool_name(m or {}, o) for m, o in zip(cols["metadata"], cols["output_messages"],
                                                                   strict=True)],
        "input_text": cols["input_text"], "output_text": cols["output_text"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=20, help="window pairs per (shift, size)")
    ap.add_argument("--sizes", default="500,5000")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    python = ensure_venv()
    load_start = os.getloadavg()
    pool = S.simulated_pool(hours=24)
    tmp = Path(tempfile.mkdtemp(prefix="drift-vs-evidently-"))
    cfg = DriftConfig()
    conditions: list[S.Shift | None] = [None, *S.SHIFTS]
    ours: dict[tuple[str, int], list[bool]] = {}
    theirs: dict[tuple[str, int], list[dict]] = {}
    our_time: dict[int, list[float]] = {}
    ev_time: dict[int, list[float]] = {}
    evidently = Evidently(python, tmp / "evidently.log")
    started = time.perf_counter()

    def judge_pair(ref: S.Columns, cur: S.Columns, tag: str) -> tuple[dict, float, dict]:
        rp, cp = tmp / f"{tag}-ref.parquet", tmp / f"{tag}-cur.parquet"
        S.write_window(tabular(ref), rp)
        S.write_window(tabular(cur), cp)
        descriptors.clear_caches()  # descriptors and featurization from scratch for every pair
        t = time.perf_counter()
        verdicts, _ = group_verdicts(ref, cur, cfg, rng=rng)
        seconds = time.perf_counter() - t
        return verdicts, seconds, evidently.judge(rp, cp)

    for n in sizes:
        rng = np.random.default_rng(n)
        judge_pair(*S.window_pair(pool, n, rng), f"{n}-warmup")  # one-time costs of both tools, not timed
        for ci, shift in enumerate(conditions):
            name = shift.name if shift else "no shift"
            rng = np.random.default_rng(7919 * ci + n)
            for p in range(args.pairs):
                ref, cur = S.window_pair(pool, n, rng, shift)
                verdicts, seconds, ev = judge_pair(ref, cur, f"{n}-{ci}-{p}")
                our_time.setdefault(n, []).append(seconds)
                hit = any(v.drifted for v in verdicts.values()) if shift is None else verdicts[shift.direction].drifted
                ours.setdefault((name, n), []).append(hit)
                theirs.setdefault((name, n), []).append(ev)
                ev_time.setdefault(n, []).append(ev["seconds"])
    evidently.close()
    wall = time.perf_counter() - started
    errors = sum(1 for rs in theirs.values() for r in rs if r.get("error"))
    print(f"{args.pairs} pairs per cell, each judged by both tools back to back; wall time {wall:.0f}s; "
          f"Evidently errors: {errors}")
    print(f"{'shift':24s} {'n':>5s}  {'llmpulse':>9s}  {'Evidently any column':>20s}  {'Evidently dataset':>17s}")
    for n in sizes:
        for shift in conditions:
            name = shift.name if shift else "no shift"
            their_verdicts = theirs[(name, n)]
            any_rate = np.mean([bool(r["any"]) for r in their_verdicts])
            ds_rate = np.mean([bool(r["dataset"]) for r in their_verdicts])
            label = "no shift (false pos.)" if shift is None else name
            print(f"{label:24s} {n:5d}  {np.mean(ours[(name, n)]):9.0%}  {any_rate:20.0%}  {ds_rate:17.0%}")
    for n in sizes:
        a, b = float(np.mean(our_time[n])), float(np.mean(ev_time[n]))
        ma, mb = float(np.median(our_time[n])), float(np.median(ev_time[n]))
        print(f"runtime per pair at n={n}: llmpulse {a * 1000:.0f} ms, Evidently {b * 1000:.0f} ms "
              f"-> llmpulse {b / a:.1f}x faster (medians {ma * 1000:.0f} / {mb * 1000:.0f} ms: {mb / ma:.1f}x)")
    start_load = " ".join(f"{x:.2f}" for x in load_start)
    end_load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average (1/5/15 min) at start {start_load}, at end {end_load} ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
