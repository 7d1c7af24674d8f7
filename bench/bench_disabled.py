"""Benchmark: what ``CDE_OTEL_ENABLED`` unset costs (goal: ratio ≤ 1.02) and the bootstrap's start-up cost.

    .venv/bin/python bench/bench_disabled.py [--quick]

Disabled means the ``.pth`` bootstrap line reads the variable and stops: nothing is
imported or patched, so the per-call cost must be zero. Two honest ways to show it:

* **In one process** (the key, ``disabled_ratio_vs_bare``): a child started normally, with
  the ``.pth`` processed and ``CDE_OTEL_ENABLED`` unset, checks that neither
  ``opentelemetry`` nor ``wrapt`` nor ``cde_otel._bootstrap`` was imported and that
  ``Project.transition_status`` is a plain function, then times that method against the
  same method of a **pristine copy** of ``cde_otel/core/model.py`` loaded under another
  module name (a class no bootstrap has ever seen), interleaved in rounds. Same process,
  same allocator and caches: the ratio isolates what the disabled path leaves on a call.
* **Across processes** (``disabled_ratio_cross_process``, context): the same timing loop in
  child processes started normally (``.pth`` processed, variable unset) and with ``-S``
  (no ``site``, so no ``.pth`` at all; the repo and site-packages go on ``PYTHONPATH``), pairs alternated,
  median of the per-pair ratios. Different processes differ in memory layout, so this one
  is noisier; it is there to show nothing hides outside the class either.

``disabled_import_ms``: the start-up cost of the bootstrap, i.e. what ``site`` does for
``cde_otel_bootstrap.pth`` at every interpreter start: ``site.addpackage()`` on it (read the
file, ``exec`` the line, which tests the variable), timed in a child with the variable
unset. For context, ``python -c pass`` wall time is also reported with the variable unset,
set (bootstrap imported: wrapt and post-import hooks) and with ``-S``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
PTH_NAME = "cde_otel_bootstrap.pth"
_HEAVY_MODULES = ("opentelemetry", "wrapt", "cde_otel._bootstrap", "structlog")


def _disabled_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CDE_OTEL_ENABLED", "OTEL_SDK_DISABLED")}
    env["PYTHONHASHSEED"] = "0"
    return env


def _run_child(args: list[str], env: dict[str, str], python_flags: tuple[str, ...] = ()) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, *python_flags, str(Path(__file__)), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child {args} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


# -- children ------------------------------------------------------------------------------
def _loop_over(project: Any, status_cls: Any) -> Any:
    archived, active = status_cls.ARCHIVED, status_cls.ACTIVE

    def loop(n: int) -> None:
        for _ in range(n // 2):
            project.transition_status(archived)
            project.transition_status(active)

    return loop


def _child_in_process(rounds: int, iterations: int) -> dict[str, Any]:
    imported_at_start = sorted(m for m in _HEAVY_MODULES if m in sys.modules)
    import types

    from _timing import interleave

    from cde_otel.core import model

    spec = importlib.util.spec_from_file_location("_bench_pristine_model", model.__file__)
    if spec is None or spec.loader is None:
        raise RuntimeError("cannot load a pristine copy of cde_otel.core.model")
    pristine = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = pristine  # dataclasses look their module up while building the classes
    spec.loader.exec_module(pristine)
    method = model.Project.__dict__["transition_status"]
    disabled_project = model.Project(name="disabled", path="/nonexistent/a")
    disabled_project.status = model.ProjectStatus.ACTIVE
    bare_project = pristine.Project(name="bare", path="/nonexistent/b")
    bare_project.status = pristine.ProjectStatus.ACTIVE
    timings = interleave(
        {
            "disabled": _loop_over(disabled_project, model.ProjectStatus),
            "bare": _loop_over(bare_project, pristine.ProjectStatus),
        },
        rounds=rounds,
        iterations=iterations,
    )
    return {
        "ratio": timings.ratio("disabled", "bare"),
        "ratio_iqr": list(timings.ratio_spread("disabled", "bare")),
        "disabled_ns_per_op": timings.median_ns("disabled"),
        "bare_ns_per_op": timings.median_ns("bare"),
        "method_is_plain_function": type(method) is types.FunctionType,
        "heavy_modules_imported_at_start": imported_at_start,
        "heavy_modules_imported_after": sorted(m for m in _HEAVY_MODULES if m in sys.modules),
    }


def _child_loop(runs: int, iterations: int) -> dict[str, Any]:
    from _timing import time_loop

    from cde_otel.core import Project, ProjectStatus

    project = Project(name="loop", path="/nonexistent/loop")
    project.status = ProjectStatus.ACTIVE
    loop = _loop_over(project, ProjectStatus)
    loop(iterations)  # warm-up
    samples = [time_loop(loop, iterations)[0] for _ in range(runs)]
    return {"ns_per_op": statistics.median(samples), "site_enabled": "site" in sys.modules}


def _child_addpackage(repeats: int) -> dict[str, Any]:
    import site

    sitedirs = [d for d in site.getsitepackages() if (Path(d) / PTH_NAME).exists()]
    if not sitedirs:
        raise RuntimeError(f"{PTH_NAME} is not installed in {site.getsitepackages()}")
    sitedir = sitedirs[0]
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        site.addpackage(sitedir, PTH_NAME, set())
        samples.append(time.perf_counter_ns() - start)
    return {
        "ms": statistics.median(samples) / 1e6,
        "sitedir": sitedir,
        "bootstrap_imported": "cde_otel._bootstrap" in sys.modules,
    }


# -- parent --------------------------------------------------------------------------------
def _startup_ms(flags: tuple[str, ...], env: dict[str, str], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        subprocess.run([sys.executable, *flags, "-c", "pass"], env=env, check=True)
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return samples


def measure_disabled(*, quick: bool = False) -> dict[str, Any]:
    env = _disabled_env()
    rounds, iterations = (21, 1_000) if quick else (201, 2_000)
    in_process = _run_child(["--child", "in-process", str(rounds), str(iterations)], env)
    if not in_process["method_is_plain_function"] or in_process["heavy_modules_imported_after"]:
        raise RuntimeError(f"the disabled path patched or imported something: {in_process}")

    # Across processes: normal start-up (.pth processed) vs -S (no site, no .pth), pairs alternated.
    # PYTHONPATH entries are not site dirs: their .pth files are never processed.
    path = [str(REPO_ROOT), sysconfig.get_paths()["purelib"], env.get("PYTHONPATH", "")]
    no_site_env = {**env, "PYTHONPATH": os.pathsep.join(p for p in path if p)}
    pairs, runs, loop_iterations = (2, 5, 1_000) if quick else (8, 30, 4_000)
    pair_ratios = []
    for _ in range(pairs):
        with_pth = _run_child(["--child", "loop", str(runs), str(loop_iterations)], env)
        without = _run_child(["--child", "loop", str(runs), str(loop_iterations)], no_site_env, ("-S",))
        pair_ratios.append(with_pth["ns_per_op"] / without["ns_per_op"])

    addpackage = _run_child(["--child", "addpackage", "50" if quick else "500"], env)
    if addpackage["bootstrap_imported"]:
        raise RuntimeError("the bootstrap was imported with CDE_OTEL_ENABLED unset")
    startup_runs = 3 if quick else 15
    startup: dict[str, list[float]] = {"disabled": [], "enabled": [], "no_site": []}
    enabled_env = {**env, "CDE_OTEL_ENABLED": "true"}
    for _ in range(startup_runs):  # interleaved, one of each per turn
        startup["disabled"] += _startup_ms((), env, 1)
        startup["enabled"] += _startup_ms((), enabled_env, 1)
        startup["no_site"] += _startup_ms(("-S",), no_site_env, 1)
    return {
        "disabled_ratio_vs_bare": round(in_process["ratio"], 4),
        "disabled_import_ms": round(addpackage["ms"], 4),
        "disabled": {
            "method": "one child process, .pth processed, CDE_OTEL_ENABLED unset: the class as the app sees it "
            "vs a pristine copy of cde_otel.core.model loaded under another name, interleaved",
            "ratio_iqr": [round(v, 4) for v in in_process["ratio_iqr"]],
            "disabled_ns_per_op": round(in_process["disabled_ns_per_op"], 1),
            "bare_ns_per_op": round(in_process["bare_ns_per_op"], 1),
            "method_is_plain_function": in_process["method_is_plain_function"],
            "heavy_modules_imported": in_process["heavy_modules_imported_after"],
            "disabled_ratio_cross_process": round(statistics.median(pair_ratios), 4),
            "cross_process_pair_ratios": [round(r, 4) for r in pair_ratios],
            "pth_addpackage_ms": round(addpackage["ms"], 4),
            "python_c_pass_ms_median": {k: round(statistics.median(v), 2) for k, v in startup.items()},
            "rounds": rounds,
            "iterations_per_round": iterations,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *numbers = args.child
        values = [int(n) for n in numbers]
        if kind == "in-process":
            result = _child_in_process(*values)
        elif kind == "loop":
            result = _child_loop(*values)
        else:
            result = _child_addpackage(*values)
    else:
        result = measure_disabled(quick=args.quick)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
