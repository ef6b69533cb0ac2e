"""Benchmark: `creditops serve` against `mlflow models serve` on the same champion version.

Both run on loopback on this machine, one after the other, with inference
logging on for creditops (a SQLite store in a temporary folder). Measured for
each: time from process start to the first scored answer; single-row latency
(p50/p99) and throughput at concurrency 1 and 8 with `wrk` (installed from
Debian's packages if absent); one request of 1,000 and of 10,000 rows. Prints
the figures and the ratios. The load generator shares the two cores with the
server under test: figures are what this machine gives, not the server alone.

    .venv/bin/python bench/serve.py                 # champion of ./creditops.toml, or a temporary one
    .venv/bin/python bench/serve.py --duration 5    # a quick look
    .venv/bin/python bench/serve.py --starts 9 --first-answer-only   # start-up only: 9 cold starts
    .venv/bin/python bench/serve.py --durability    # async vs acknowledged log, c=8, same run
    .venv/bin/python bench/serve.py --shadow        # shadow scoring off vs on, c=8, same run
    .venv/bin/python bench/serve.py --workers 2     # the service with two worker processes
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from creditops import features, registry
from creditops.config import Settings, load_config
from creditops.data import load_dataset
from creditops.errors import NoChampionError

BIN = Path(sys.executable).parent
WARM_UP_REQUESTS = 300


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("installing wrk from Debian packages ...", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        subprocess.run(["apt-get", "update", "-q"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)
        found = shutil.which("wrk")
    assert found, "wrk could not be installed"
    return found


def temporary_champion(root: Path, family: str) -> Settings:
    """A registry in ``root`` whose champion is ``family`` fitted on the whole dataset."""
    settings = load_config(
        None,
        mlflow={
            "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
            "artifact_location": str(root / "artifacts"),
        },
    )
    params = {
        "xgboost": {"n_estimators": 300, "max_depth": 4, "learning_rate": 0.05},
        "lightgbm": {"n_estimators": 300, "num_leaves": 15, "learning_rate": 0.05},
        "random_forest": {"n_estimators": 100, "max_depth": 10, "min_samples_split": 10},
        "logreg": {"C": 0.5},
    }[family]
    register_version(settings, family, params, seed=0, alias=registry.CHAMPION)
    return settings


def write_config(
    settings: Settings,
    path: Path,
    store_url: str,
    runs_log: Path,
    durability: str = "async",
    serve: dict[str, Any] | None = None,
) -> None:
    lines = ["[mlflow]"]
    for key, value in settings.mlflow.model_dump(mode="json").items():
        lines.append(f"{key} = {json.dumps(value)}")
    lines += ["[serve]", f"store_url = {json.dumps(store_url)}", "poll_seconds = 10.0"]
    lines += [f"durability = {json.dumps(durability)}"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in (serve or {}).items()]
    lines += ["[logging]", f"runs_log = {json.dumps(str(runs_log))}"]
    path.write_text("\n".join(lines) + "\n")


def start_creditops(
    settings: Settings,
    folder: Path,
    durability: str = "async",
    serve: dict[str, Any] | None = None,
) -> tuple[subprocess.Popen[bytes], int, float]:
    """`creditops serve` on a free port, its inference log and run log in ``folder``.

    Returns the process, its port and the ``perf_counter`` just before it started.
    """
    config = folder / "creditops.toml"
    store_url = f"sqlite:///{folder / 'inferences.db'}"
    write_config(settings, config, store_url, folder / "runs.log", durability, serve)
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(BIN / "creditops"), "--config", str(config), "serve", "--port", str(port)],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=(folder / "creditops.log").open("wb"),
    )
    return process, port, started


def wait_first_answer(
    url: str, body: bytes, process: subprocess.Popen[bytes], started: float
) -> float:
    """Seconds from ``started`` to the first 200 answer of POST ``url``.

    Polls with one client and a 20 ms pause: a poll loop that builds a client
    per attempt burns a core the starting server needs.
    """
    with httpx.Client(timeout=5) as client:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"server exited with {process.returncode} before answering")
            try:
                answer = client.post(
                    url, content=body, headers={"content-type": "application/json"}
                )
                if answer.status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            time.sleep(0.02)
            if time.perf_counter() - started > 300:
                raise SystemExit(f"{url} gave no answer in 300 s")


def warm_up(url: str, body: bytes, seconds: float = 3.0) -> None:
    """Steady state before measuring: let start-up work finish, send a few hundred requests."""
    time.sleep(seconds)
    with httpx.Client(timeout=30) as client:
        for _ in range(WARM_UP_REQUESTS):
            client.post(url, content=body, headers={"content-type": "application/json"})


def run_wrk(
    wrk: str, url: str, body: bytes, connections: int, duration: int, workdir: Path
) -> dict[str, float]:
    script = workdir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body.decode())}\n"
    )
    threads = min(connections, 2)
    out = subprocess.run(
        [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for pct in ("50", "99"):
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert match, out
        scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[match.group(2)]
        result[f"p{pct}_ms"] = float(match.group(1)) * scale
    requests = re.search(r"(\d+) requests in", out)
    result["requests"] = float(requests.group(1)) if requests else 0.0
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    result["errors"] = float(errors.group(1)) if errors else 0.0
    if socket_errors:
        print(f"    wrk socket errors: {socket_errors.group(1)}")
    return result


def time_batch(url: str, body: bytes, repeats: int = 5) -> tuple[float, float]:
    """Best and median seconds for one POST of ``body`` (client-side, upload included)."""
    times = []
    with httpx.Client(timeout=120) as client:
        for _ in range(repeats):
            started = time.perf_counter()
            answer = client.post(url, content=body, headers={"content-type": "application/json"})
            elapsed = time.perf_counter() - started
            assert answer.status_code == 200, answer.text[:300]
            times.append(elapsed)
    return min(times), statistics.median(times)


def records(n: int, seed: int = 0) -> list[dict[str, Any]]:
    frame = load_dataset(load_config(None).data).features
    picked = frame.sample(n=n, replace=n > len(frame), random_state=seed)
    out = []
    for row in picked.to_dict(orient="records"):
        out.append(
            {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
        )
    return out


def time_cold_starts(settings: Settings, workdir: Path, body: bytes, starts: int) -> list[float]:
    """First-answer seconds of ``starts`` cold starts of `creditops serve`, each on a new log."""
    times = []
    for i in range(starts):
        folder = workdir / f"start-{i}"
        folder.mkdir()
        process, port, started = start_creditops(settings, folder)
        try:
            times.append(
                wait_first_answer(f"http://127.0.0.1:{port}/invocations", body, process, started)
            )
        finally:
            stop(process)
        print(f"  cold start {i + 1}/{starts}: first answer {times[-1]:.2f} s", flush=True)
    return times


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def compare_small_paths(settings: Settings, declined: list[dict[str, Any]]) -> None:
    """Decision paths of the service's small batches: leaf masks against XGBoost's predictor.

    In this process, on the champion's compiled model, the best of 300 calls
    for 1, 4 and 8 declined applicants by each.
    """
    from creditops.inference.path_trees import PathContributions
    from creditops.inference.raw import raw_matrix
    from creditops.inference.scorer import prepare_model

    client = registry.connect(settings.mlflow)
    ref = registry.resolve_alias(client, settings.mlflow.registered_model)
    loaded = prepare_model(ref, registry.load_pipeline(client, ref))
    paths = loaded.model.contribute_path if loaded.model is not None else None
    if not isinstance(paths, PathContributions) or paths.masks is None or not loaded.fast_path:
        print("decision paths: not vector-leaf trees with leaf masks for this champion")
        return
    masks, transform = paths.masks, loaded.transform
    assert transform is not None  # the fast path
    for n in (1, 4, 8):
        x = transform(raw_matrix((declined * 8)[:n]))
        assert np.array_equal(masks(x), paths.by_xgboost(x))  # the same answer, bit for bit
        best = {}
        for name, walk in (("masks", masks), ("xgboost", paths.by_xgboost)):
            times = []
            for _ in range(300):
                started = time.perf_counter()
                walk(x)
                times.append(time.perf_counter() - started)
            best[name] = min(times) * 1e6
        print(
            f"  decision paths of {n} row(s): leaf masks {best['masks']:.0f} us, "
            f"XGBoost's predictor {best['xgboost']:.0f} us, "
            f"{best['xgboost'] / best['masks']:.1f}x",
            flush=True,
        )


def compare_durability(settings: Settings, workdir: Path, wrk: str, duration: int) -> None:
    """Throughput and p99 of single-row /invocations at c=8, async then acknowledged log."""
    one = json.dumps({"dataframe_records": records(1)}).encode()
    figures: dict[str, dict[str, float]] = {}
    for mode in ("async", "acknowledged"):
        folder = workdir / f"durability-{mode}"
        folder.mkdir()
        process, port, started = start_creditops(settings, folder, durability=mode)
        url = f"http://127.0.0.1:{port}/invocations"
        try:
            wait_first_answer(url, one, process, started)
            warm_up(url, one)
            figures[mode] = stats = run_wrk(wrk, url, one, 8, duration, folder)
        finally:
            stop(process)
        from creditops.serving.store import InferenceStore

        store = InferenceStore(f"sqlite:///{folder / 'inferences.db'}")
        stats["logged_rows"] = float(store.count())
        store.close()
        print(
            f"  durability {mode:12s} c=8: {stats['rps']:8.0f} req/s  p50 {stats['p50_ms']:.2f} ms  "
            f"p99 {stats['p99_ms']:.2f} ms  non-2xx {stats['errors']:.0f}  "
            f"rows logged {stats['logged_rows']:.0f} (wrk completed {stats['requests']:.0f})",
            flush=True,
        )
    ratio = figures["acknowledged"]["rps"] / figures["async"]["rps"]
    print(f"  acknowledged / async throughput: {ratio:.2f}x")
    (workdir / "durability.json").write_text(json.dumps(figures, indent=2))
    print(f"raw figures: {workdir / 'durability.json'}")


def register_version(
    settings: Settings, family: str, params: dict[str, Any], *, seed: int, alias: str
) -> int:
    """``family`` with ``params`` fitted on the whole dataset, registered under ``alias``."""
    dataset = load_dataset(settings.data)
    pipeline = features.build_pipeline(family, params, seed=seed).fit(
        dataset.features, dataset.target
    )
    client = registry.connect(settings.mlflow)
    ref = registry.register_fitted(
        client,
        settings.mlflow.registered_model,
        pipeline,
        family=family,
        threshold=0.4,
        data_hash=dataset.data_hash,
        run_name=f"bench-{family}-{alias}",
    )
    registry.set_alias(client, settings.mlflow.registered_model, alias, ref.version)
    return ref.version


def add_challenger(settings: Settings, family: str) -> int:
    """A second version (``family``, other hyperparameters) under the ``challenger`` alias."""
    params = {
        "xgboost": {"n_estimators": 200, "max_depth": 3, "learning_rate": 0.08},
        "lightgbm": {"n_estimators": 200, "num_leaves": 7, "learning_rate": 0.08},
        "random_forest": {"n_estimators": 60, "max_depth": 8},
        "logreg": {"C": 0.1},
    }[family]
    return register_version(settings, family, params, seed=1, alias=registry.CHALLENGER)


def compare_shadow(
    settings: Settings, workdir: Path, wrk: str, duration: int, family: str, rounds: int = 2
) -> None:
    """Champion answers at c=8 with shadow scoring off and on, alternated ``rounds`` times."""
    version = add_challenger(settings, family)
    print(f"challenger: v{version} ({family}), shadowed when on", flush=True)
    bodies = {
        "predict": json.dumps(records(1)).encode(),
        "invocations": json.dumps({"dataframe_records": records(1)}).encode(),
    }
    figures: dict[str, list[dict[str, float]]] = {}
    for round_ in range(rounds):
        for shadow in (False, True):
            mode = "on" if shadow else "off"
            folder = workdir / f"shadow-{mode}-{round_}"
            folder.mkdir()
            serve = {"shadow": shadow}
            process, port, started = start_creditops(settings, folder, serve=serve)
            base = f"http://127.0.0.1:{port}"
            try:
                wait_first_answer(f"{base}/invocations", bodies["invocations"], process, started)
                if shadow:  # the challenger loads at the first poll: wait for it
                    deadline = time.monotonic() + 60
                    while time.monotonic() < deadline:
                        ready = httpx.get(f"{base}/ready", timeout=5).json()
                        if str(ready.get("shadow", "")).startswith("shadowing"):
                            break
                        time.sleep(0.5)
                    print(f"  /ready shadow: {ready.get('shadow')}", flush=True)
                for name, body in bodies.items():
                    url = f"{base}/{name}"
                    warm_up(url, body)
                    stats = run_wrk(wrk, url, body, 8, duration, folder)
                    figures.setdefault(f"{name} {mode}", []).append(stats)
                    print(
                        f"  round {round_ + 1} shadow {mode:3s} {name:11s} c=8: {stats['rps']:8.0f} "
                        f"req/s  p50 {stats['p50_ms']:.2f} ms  p99 {stats['p99_ms']:.2f} ms  "
                        f"non-2xx {stats['errors']:.0f}",
                        flush=True,
                    )
            finally:
                stop(process)
            if shadow:
                from creditops.serving.shadow_log import read_shadow
                from creditops.serving.store import InferenceStore

                url = f"sqlite:///{folder / 'inferences.db'}"
                store = InferenceStore(url)
                logged = store.count()
                store.close()
                print(
                    f"  round {round_ + 1}: {len(read_shadow(url))} rows shadow-scored for "
                    f"{logged} champion rows logged",
                    flush=True,
                )
    print("summary (median over rounds; target: on >= 90 % of off, p99 within +1 ms)")
    for name in bodies:
        off, on = figures[f"{name} off"], figures[f"{name} on"]
        rps_off = statistics.median(s["rps"] for s in off)
        rps_on = statistics.median(s["rps"] for s in on)
        p99_off = statistics.median(s["p99_ms"] for s in off)
        p99_on = statistics.median(s["p99_ms"] for s in on)
        ratio, extra = rps_on / rps_off, p99_on - p99_off
        verdict = "PASS" if ratio >= 0.9 and extra <= 1.0 else "MISS"
        print(
            f"  {name:11s}: off {rps_off:.0f} req/s p99 {p99_off:.2f} ms; on {rps_on:.0f} req/s "
            f"p99 {p99_on:.2f} ms; throughput {ratio:.1%}, p99 {extra:+.2f} ms  {verdict}"
        )
    (workdir / "shadow.json").write_text(json.dumps(figures, indent=2))
    print(f"raw figures: {workdir / 'shadow.json'}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=Path("creditops.toml"))
    parser.add_argument("--duration", type=int, default=20, help="seconds per wrk run")
    parser.add_argument("--family", default="xgboost", help="family of a temporary champion")
    parser.add_argument("--temporary", action="store_true", help="always use a temporary champion")
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument(
        "--workers", type=int, default=1, help="[serve] workers of the measured service"
    )
    parser.add_argument(
        "--starts",
        type=int,
        default=1,
        help="cold starts timed for the first answer (median and range when more than one)",
    )
    parser.add_argument(
        "--first-answer-only",
        action="store_true",
        help="time the cold starts only: no load, no batches, no mlflow models serve",
    )
    parser.add_argument(
        "--durability",
        action="store_true",
        help="only compare [serve] durability async vs acknowledged (c=8 /invocations)",
    )
    parser.add_argument(
        "--shadow",
        action="store_true",
        help="only compare [serve] shadow off vs on (champion answers at c=8, same run)",
    )
    args = parser.parse_args()
    wrk = "" if args.first_answer_only else ensure_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    settings = load_config(args.config if args.config.is_file() else None)
    ref = None
    if not args.temporary:
        try:
            ref = registry.resolve_alias(
                registry.connect(settings.mlflow), settings.mlflow.registered_model
            )
        except NoChampionError:
            print("no champion in the configured registry: using a temporary one")
    if ref is None:
        settings = temporary_champion(workdir / "registry", args.family)
        ref = registry.resolve_alias(
            registry.connect(settings.mlflow), settings.mlflow.registered_model
        )
    print(
        f"champion: {ref.name} v{ref.version} ({ref.family}); {os.cpu_count()} cores; wrk {args.duration} s per run"
    )

    if args.durability:
        compare_durability(settings, workdir, wrk, args.duration)
        return
    if args.shadow:
        compare_shadow(settings, workdir, wrk, args.duration, ref.family or args.family)
        return
    one = json.dumps({"dataframe_records": records(1)}).encode()
    if args.first_answer_only:
        times = time_cold_starts(settings, workdir, one, args.starts)
        print(
            f"creditops: first answer median {statistics.median(times):.2f} s, "
            f"range {min(times):.2f}-{max(times):.2f} s over {len(times)} cold start(s)"
            f" ({'PASS' if statistics.median(times) < 3 else 'MISS'} < 3 s)"
        )
        return
    extra_starts = time_cold_starts(settings, workdir, one, args.starts - 1)
    one_predict = json.dumps(records(1)).encode()
    big = {n: records(n, seed=1) for n in (1_000, 10_000)}
    results: dict[str, dict[str, Any]] = {}

    # --- creditops -------------------------------------------------------------
    serve = {"workers": args.workers} if args.workers > 1 else None
    ours, port, started = start_creditops(settings, workdir, serve=serve)
    base = f"http://127.0.0.1:{port}"
    sent_rows = 0
    try:
        first = wait_first_answer(f"{base}/invocations", one, ours, started)
        sent_rows += 1 + WARM_UP_REQUESTS
        r: dict[str, Any] = {"first_answer_s": first}
        print(f"creditops: first answer {first:.2f} s after start", flush=True)
        if extra_starts:
            starts = [*extra_starts, first]
            r["first_answer_starts_s"] = starts
            r["first_answer_s"] = statistics.median(starts)
            print(
                f"  median over {len(starts)} cold starts {r['first_answer_s']:.2f} s, "
                f"range {min(starts):.2f}-{max(starts):.2f} s",
                flush=True,
            )
        warm_up(f"{base}/invocations", one)
        # one declined applicant: its answer carries reason codes (approvals get none)
        scored = httpx.post(f"{base}/predict", json=big[1_000], timeout=60).json()["predictions"]
        declined_rows = [r for r, p in zip(big[1_000], scored, strict=True) if p["reasons"]]
        declined = declined_rows[0]
        for name, url, body in (
            ("invocations", f"{base}/invocations", one),
            ("predict", f"{base}/predict", one_predict),
            ("predict declined", f"{base}/predict", json.dumps(declined).encode()),
        ):
            for conc in (1, 8):
                stats = run_wrk(wrk, url, body, conc, args.duration, workdir)
                sent_rows += int(stats["requests"])
                r[f"{name}_c{conc}"] = stats
                print(
                    f"  {name:11s} c={conc}: {stats['rps']:8.0f} req/s  p50 {stats['p50_ms']:.2f} ms  "
                    f"p99 {stats['p99_ms']:.2f} ms  non-2xx {stats['errors']:.0f}",
                    flush=True,
                )
        for n, rows in big.items():
            for label, url, body in (
                (
                    "invocations",
                    f"{base}/invocations",
                    json.dumps({"dataframe_records": rows}).encode(),
                ),
                ("predict+reasons", f"{base}/predict", json.dumps(rows).encode()),
                ("predict", f"{base}/predict?reasons=false", json.dumps(rows).encode()),
            ):
                best, median = time_batch(url, body)
                sent_rows += 5 * n
                r[f"{label}_{n}"] = (best, median)
                print(
                    f"  {label:15s} {n:6d} rows: best {best * 1000:.1f} ms, median {median * 1000:.1f} ms",
                    flush=True,
                )
    finally:
        stop(ours)
    compare_small_paths(settings, declined_rows)
    from creditops.serving.store import InferenceStore

    store = InferenceStore(f"sqlite:///{workdir / 'inferences.db'}")
    logged = store.count()
    store.close()
    r["logged_rows"] = logged
    print(
        f"  inference log after SIGTERM: {logged} rows (wrk-completed + batch rows: {sent_rows}; "
        "wrk drops answers still in flight when it stops, so the log may hold a few more)"
    )
    results["creditops"] = r

    # --- mlflow models serve --------------------------------------------------------
    if not args.skip_mlflow:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": settings.mlflow.tracking_uri,
            "MLFLOW_REGISTRY_URI": settings.mlflow.tracking_uri,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        started = time.perf_counter()
        theirs = subprocess.Popen(
            [
                str(BIN / "mlflow"),
                "models",
                "serve",
                "-m",
                f"models:/{ref.name}@champion",
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(workdir / "mlflow.log").open("wb"),
        )
        try:
            first = wait_first_answer(f"{base}/invocations", one, theirs, started)
            m: dict[str, Any] = {"first_answer_s": first}
            print(f"mlflow models serve: first answer {first:.2f} s after start", flush=True)
            warm_up(f"{base}/invocations", one)
            for conc in (1, 8):
                stats = run_wrk(wrk, f"{base}/invocations", one, conc, args.duration, workdir)
                m[f"invocations_c{conc}"] = stats
                print(
                    f"  invocations c={conc}: {stats['rps']:8.0f} req/s  p50 {stats['p50_ms']:.2f} ms  "
                    f"p99 {stats['p99_ms']:.2f} ms  non-2xx {stats['errors']:.0f}",
                    flush=True,
                )
            for n, rows in big.items():
                body = json.dumps({"dataframe_records": rows}).encode()
                best, median = time_batch(f"{base}/invocations", body)
                m[f"invocations_{n}"] = (best, median)
                print(
                    f"  invocations     {n:6d} rows: best {best * 1000:.1f} ms, median {median * 1000:.1f} ms",
                    flush=True,
                )
        finally:
            stop(theirs)
        results["mlflow"] = m

    # --- summary ---------------------------------------------------------------------
    ours_r = results["creditops"]
    print("\nsummary (creditops, inference logging on)")
    c8 = ours_r["invocations_c8"]
    rows = [
        ("c=8 throughput >= 1500 req/s", f"{c8['rps']:.0f}", c8["rps"] >= 1500),
        ("c=8 p99 < 10 ms", f"{c8['p99_ms']:.2f} ms", c8["p99_ms"] < 10),
        *(
            (f"{name} c=8 >= 1500 req/s", f"{stats['rps']:.0f}", stats["rps"] >= 1500)
            for name, stats in (
                ("/predict", ours_r["predict_c8"]),
                ("/predict, a decline with reasons", ours_r["predict declined_c8"]),
            )
        ),
        (
            "10,000 rows with reasons < 0.5 s (/predict, median)",
            f"{ours_r['predict+reasons_10000'][1]:.3f} s",
            ours_r["predict+reasons_10000"][1] < 0.5,
        ),
        (
            "10,000 rows < 0.15 s (invocations, median)",
            f"{ours_r['invocations_10000'][1]:.3f} s",
            ours_r["invocations_10000"][1] < 0.15,
        ),
        (
            "first answer < 3 s" + (" (median)" if "first_answer_starts_s" in ours_r else ""),
            f"{ours_r['first_answer_s']:.2f} s",
            ours_r["first_answer_s"] < 3,
        ),
    ]
    if "mlflow" in results:
        theirs_r = results["mlflow"]
        for conc in (1, 8):
            ratio = ours_r[f"invocations_c{conc}"]["rps"] / theirs_r[f"invocations_c{conc}"]["rps"]
            rows.append(
                (
                    f"c={conc} throughput vs mlflow (target >= 10x at c=8)",
                    f"{ratio:.1f}x",
                    ratio >= 10 if conc == 8 else None,
                )
            )
        for n in (1_000, 10_000):
            ratio = theirs_r[f"invocations_{n}"][1] / ours_r[f"invocations_{n}"][1]
            rows.append((f"{n} rows: mlflow time / creditops time", f"{ratio:.1f}x", None))
        ratio = theirs_r["first_answer_s"] / ours_r["first_answer_s"]
        rows.append(("first answer: mlflow / creditops", f"{ratio:.1f}x", None))
    for label, figure, ok in rows:
        mark = "" if ok is None else ("  PASS" if ok else "  MISS")
        print(f"  {label:55s} {figure:>12s}{mark}")
    (workdir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"\nraw figures: {workdir / 'results.json'}")


if __name__ == "__main__":
    main()
