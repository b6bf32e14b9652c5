"""The ``apidam`` command line.

Exit codes: 0 success, 1 the run failed, 2 usage or input error (one line naming the field).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console

from engine import SpecError, parse_job
from engine.spec import MAX_PAYLOAD_BYTES, decode_job_json
from engine.units import US_PER_S

from .interrupt import trap_signals
from .provenance import new_run_dir, point_latest, provenance
from .scenario import ScenarioError, load_scenario
from .sweep import MAX_RUNS

__all__ = ["build_parser", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"


def _err(msg: str) -> None:
    print(f"apidam: {msg}", file=sys.stderr)


class _Progress:
    """A rich progress bar over virtual time, shown once a run has taken ~2 s."""

    def __init__(self, enabled: bool, label: str, unit: str = "s simulated") -> None:
        self.enabled = enabled
        self.label = label
        self.unit = unit
        self.scale = US_PER_S if unit == "s simulated" else 1
        self.t0 = time.perf_counter()
        self.bar = None
        self.task = None

    def __call__(self, t: int, horizon: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            if time.perf_counter() - self.t0 < 2.0:
                return
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                TextColumn("{task.completed:.0f}/{task.total:.0f} " + self.unit),
                                TimeElapsedColumn(), console=Console(stderr=True),
                                transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=horizon / self.scale)
        self.bar.update(self.task, completed=t / self.scale)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _err_all(e: ScenarioError) -> None:
    """Every problem of a scenario, one line each."""
    for line in e.lines():
        _err(line)


def _resolve(path: str) -> Path:
    p = Path(path)
    if not p.exists() and not p.suffix and (SCENARIO_DIR / f"{path}.toml").exists():
        return SCENARIO_DIR / f"{path}.toml"
    return p


ARTEFACTS = ("summary.json", "series.msgpack", "scenario.toml", "report.html",
             "attempts_per_s.png", "latency_cdf.png", "backlog.png", "pace.png", "goodput.png")


def _writable_dir(out: Path) -> str | None:
    """Make sure ``out`` is (or can be made) a folder we can write; a reason if not."""
    try:
        if out.exists() and not out.is_dir():
            return f"--out {out}: exists and is not a folder"
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".apidam-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        return f"--out {out}: cannot write there ({e.strerror or e})"
    return None


def _writable_file(path: Path, flag: str) -> str | None:
    """Make sure ``path`` can be written as a regular file; a reason if not."""
    try:
        if path.exists() and not path.is_file():
            return f"{flag} {path}: exists and is not a regular file"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.parent.is_dir():
            return f"{flag} {path}: its folder is not a folder"
        probe = path.parent / f".{path.name}.apidam-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        return f"{flag} {path}: cannot write there ({e.strerror or e})"
    return None


@contextmanager
def _output_folder(out: Path) -> Iterator[None]:
    """The folders made for ``out`` (it and any missing parents) are removed again when the
    command leaves them empty: a run or sweep that fails before writing leaves no litter."""
    made = [p for p in (out, *out.parents) if not p.exists()]  # deepest first
    try:
        yield
    finally:
        for folder in made:
            try:
                folder.rmdir()
            except OSError:  # not empty (something was written), or already gone
                break


def _clear_artefacts(out: Path) -> None:
    """Remove what an earlier run wrote here, so nothing stale sits beside the new summary."""
    for name in ARTEFACTS:
        (out / name).unlink(missing_ok=True)


def _keep_scenario(path: Path, out: Path) -> None:
    """A copy of the scenario file beside the results (the report tells its story from it)."""
    if path.is_file():
        (out / "scenario.toml").write_bytes(path.read_bytes())


class _RayFailed(Exception):
    def __init__(self, error) -> None:
        self.error = error


def _simulate(sc, path: Path, args: argparse.Namespace, progress, stop):
    """One run on the chosen backend, stopping when ``stop`` says so."""
    if args.backend == "local":
        from .runtime.local import run_local

        if args.trace is None:
            return run_local(sc, base_dir=path.parent, progress=progress,
                             should_stop=stop.requested)
        from .tracefile import TraceWriter

        with TraceWriter(Path(args.trace)) as trace:  # streamed: complete even if stopped
            return run_local(sc, base_dir=path.parent, trace_to=trace, progress=progress,
                             should_stop=stop.requested)
    from .runtime.ray import RayRunError, run_ray

    try:
        return run_ray(sc, base_dir=path.parent, address=args.ray_address,
                       placement=args.placement, progress=progress,
                       should_stop=stop.requested)
    except RayRunError as e:
        raise _RayFailed(e) from e


def _bad_ray_address(args: argparse.Namespace) -> str | None:
    """A malformed --ray-address (or RAY_ADDRESS) is a usage error, found before anything."""
    if args.backend != "ray":
        return None
    import os

    from .runtime.ray import parse_ray_address

    address = args.ray_address or os.environ.get("RAY_ADDRESS")
    if not address:
        return None
    try:
        parse_ray_address(address)
    except ValueError as e:
        return str(e)
    return None


def _cmd_run(args: argparse.Namespace) -> int:
    path = _resolve(args.scenario)
    problem = _bad_ray_address(args)
    if problem:
        _err(problem)
        return EXIT_USAGE
    if args.trace and args.backend != "local":
        _err("--trace is only available with --backend local (same trace hash on both)")
        return EXIT_USAGE
    overrides = list(args.set or [])
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    try:
        sc = load_scenario(path, overrides)
    except ScenarioError as e:
        _err_all(e)
        return EXIT_USAGE
    base = None if args.out else Path("out") / sc.name
    out = Path(args.out) if args.out else new_run_dir(base)
    with _output_folder(out):
        return _run_into(out, base, sc, path, overrides, args)


def _run_into(out: Path, base: Path | None, sc, path: Path, overrides: list[str],
              args: argparse.Namespace) -> int:
    problem = _writable_dir(out) or (_writable_file(Path(args.trace), "--trace")
                                     if args.trace else None)
    if problem:  # checked before simulating, not after
        _err(problem)
        return EXIT_USAGE
    console = Console(quiet=args.quiet)
    if not console.is_terminal:  # logs and CI: 100 columns, or room for --wide
        console = Console(quiet=args.quiet, width=220 if args.wide else 100)
    progress = _Progress(not args.quiet, sc.name)
    try:
        with trap_signals() as stop:
            result = _simulate(sc, path, args, progress, stop)
    except _RayFailed as failed:
        progress.close()
        e = failed.error
        _err(str(e))
        if e.partial is not None:
            _clear_artefacts(out)
            e.partial.save(out)
            _err(f"partial results written to {out}")
        return EXIT_FAILED
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once
        progress.close()
        _err("interrupted")
        return EXIT_INTERRUPTED
    except ScenarioError as e:  # found while building the world (e.g. a trace file)
        progress.close()
        _err_all(e)
        return EXIT_USAGE
    except Exception:  # a crash inside a run is reported (exit 1), not re-raised
        progress.close()
        _err("the run failed with an internal error:")
        traceback.print_exc()
        return EXIT_FAILED
    progress.close()
    result.summary["provenance"] = provenance(
        scenario_path=path, overrides=overrides, seed=sc.seed, seed_option=args.seed is not None,
        backend=args.backend, placement=args.placement if args.backend == "ray" else None,
        argv=args.argv)
    _clear_artefacts(out)
    written = result.save(out)
    _keep_scenario(path, out)
    if base is not None:
        point_latest(base, out)
    if stop.requested():
        at = result.summary.get("interrupted_at_s", result.summary["sim_seconds"])
        _err(f"interrupted at virtual time {at:.0f} s; partial results written to {out}")
        return EXIT_INTERRUPTED
    if not args.no_plots:
        from .plots import plot

        written += plot(result, out)
    if args.trace:
        written.append(Path(args.trace))
    from .report import print_summary

    print_summary(result, console, wide=args.wide)
    console.print("wrote " + ", ".join(str(p) for p in written))
    return EXIT_OK


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep import check_size, parse_grid

    path = _resolve(args.scenario)
    problem = _bad_ray_address(args)
    if problem:
        _err(problem)
        return EXIT_USAGE
    try:
        grid = parse_grid(args.grid or [])
        check_size(grid, args.seeds)
        sc0 = load_scenario(path, list(args.set or []))
        name = sc0.name
        problem = _heatmap_problem(args, grid, sc0)
        if problem:
            _err(problem)
            return EXIT_USAGE
    except ScenarioError as e:
        _err_all(e)
        return EXIT_USAGE
    base = None if args.out else Path("out") / f"sweep-{name}"
    out = Path(args.out) if args.out else new_run_dir(base)
    with _output_folder(out):
        return _sweep_into(out, base, path, grid, sc0, args)


def _sweep_into(out: Path, base: Path | None, path: Path, grid: list[tuple[str, list[str]]],
                sc0, args: argparse.Namespace) -> int:
    from .report import print_sweep
    from .sweep import run_sweep, summarize_sweep, write_sweep

    problem = _writable_dir(out)
    if problem:  # checked before the runs, not after
        _err(problem)
        return EXIT_USAGE
    progress = _Progress(not args.quiet, "sweep", unit="runs")
    try:
        with trap_signals() as stop:
            result = run_sweep(str(path), grid, args.seeds, backend=args.backend,
                               address=args.ray_address, extra=list(args.set or []),
                               progress=progress, should_stop=stop.requested)
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once
        progress.close()
        _err("interrupted")
        return EXIT_INTERRUPTED
    except ScenarioError as e:
        _err_all(e)
        return EXIT_USAGE
    except Exception as e:  # a crash inside a run is reported (exit 1), not re-raised
        progress.close()
        if type(e).__name__ == "RayRunError":  # Ray could not be started or reached
            _err(str(e))
            return EXIT_FAILED
        _err("the sweep failed with an internal error:")
        traceback.print_exc()
        return EXIT_FAILED
    progress.close()
    result["provenance"] = provenance(
        scenario_path=path, overrides=list(args.set or []), seed=sc0.seed, seed_option=False,
        backend=args.backend, placement=None, argv=args.argv)
    result["provenance"]["grid"] = list(args.grid or [])
    files = write_sweep(result, out)
    if args.heatmap and result["rows"]:
        from .plots import heatmap

        files.extend(heatmap(result, summarize_sweep(result), args.heatmap,
                             args.heatmap_workload or sc0.workloads[0].name, out))
    if base is not None:
        point_latest(base, out)
    console = Console(quiet=args.quiet)
    if not console.is_terminal:
        console = Console(quiet=args.quiet, width=200)
    print_sweep(result, summarize_sweep(result), console)
    console.print("wrote " + ", ".join(str(f) for f in files))
    if result.get("interrupted"):
        _err(f"interrupted: {result['runs']} of {result['runs_planned']} runs finished, "
             f"written to {out}")
        return EXIT_INTERRUPTED
    return EXIT_OK


def _cmd_compare(args: argparse.Namespace) -> int:
    from .compare import CompareError, compare, load_views

    try:
        cmp = compare(load_views(args.runs))
    except CompareError as e:
        _err(str(e))
        return EXIT_USAGE
    if args.json:
        print(json.dumps(cmp, indent=2))
        return EXIT_OK
    from .report import print_compare

    console = Console()
    if not console.is_terminal:
        console = Console(width=100)
    print_compare(cmp, console)
    return EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    from .html_report import write_report
    from .provenance import resolve_run

    src = Path(args.run)
    if not src.exists():
        _err(f"{args.run}: no such run folder")
        return EXIT_USAGE
    folder = resolve_run(src)
    if not (folder / "summary.json").is_file():
        _err(f"{args.run}: no summary.json (expected a run folder, its summary.json or a "
             f"scenario's output folder)")
        return EXIT_USAGE
    out = Path(args.output) if args.output else None
    if out is not None:
        problem = _writable_file(out, "--output")
        if problem:
            _err(problem)
            return EXIT_USAGE
    try:
        written = write_report(folder, out)
    except (ValueError, KeyError, OSError) as e:
        _err(f"{folder}: cannot read the run ({type(e).__name__}: {e})")
        return EXIT_USAGE
    print(f"wrote {written}")
    return EXIT_OK


def _heatmap_problem(args: argparse.Namespace, grid, sc) -> str | None:
    """``--heatmap`` needs two grid keys, a metric the sweep has and a workload that exists."""
    from .sweep import metric_names

    if args.heatmap is None:
        return "--heatmap-workload needs --heatmap" if args.heatmap_workload else None
    parts = args.heatmap.split(".")
    if parts[0] == "windows" and len(parts) == 4:  # windows.<window>.<workload>.<metric>
        if args.heatmap_workload not in (None, parts[2]):
            return (f"--heatmap {args.heatmap} names workload {parts[2]!r}, "
                    f"--heatmap-workload {args.heatmap_workload!r}")
        args.heatmap, args.heatmap_workload = f"{parts[1]}.{parts[3]}", parts[2]
    if len(grid) != 2:
        return f"--heatmap needs exactly two --grid fields (got {len(grid)})"
    names = metric_names([w.name for w in sc.windows])
    if args.heatmap not in names:
        return f"--heatmap {args.heatmap!r}: expected one of {', '.join(names)}"
    workloads = [w.name for w in sc.workloads]
    if args.heatmap_workload is not None and args.heatmap_workload not in workloads:
        return (f"--heatmap-workload {args.heatmap_workload!r}: expected one of "
                f"{', '.join(workloads)}")
    return None


def _cmd_validate(args: argparse.Namespace) -> int:
    from .clients.arrivals import check_traces

    status = EXIT_OK
    for name in args.scenarios:
        try:
            path = _resolve(name)
            sc = load_scenario(path, args.set or [])
            check_traces(sc, path.parent, str(path))
        except ScenarioError as e:
            _err_all(e)
            status = EXIT_USAGE
            continue
        print(f"{name}: ok ({sc.name}: {len(sc.workloads)} workloads, "
              f"{len(sc.upstreams)} upstreams, duration {sc.duration})")
    return status


def _cmd_scenarios(args: argparse.Namespace) -> int:
    for path in sorted(SCENARIO_DIR.glob("*.toml")):
        try:
            sc = load_scenario(path)
            first = sc.description.strip().split(". ")[0].rstrip(".")
            print(f"{path.stem:<28} {first}.")
        except ScenarioError as e:
            print(f"{path.stem:<28} INVALID: {e}")
    return EXIT_OK


def _cmd_check_job(args: argparse.Namespace) -> int:
    """Validate job payload files (JSON) the way the dam's intake does."""
    status = EXIT_OK
    for path in args.files:
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_PAYLOAD_BYTES + 1)  # bounded: /dev/zero cannot fill memory
        except OSError as e:
            _err(f"{path}: cannot read: {e.strerror}")
            status = EXIT_USAGE
            continue
        try:
            spec = parse_job(decode_job_json(data), args.customer)
        except SpecError as e:
            _err(f"{path}: {e.path}: {e.reason}")
            status = EXIT_USAGE
            continue
        print(f"{path}: ok ({spec.method} {spec.domain}, mode {spec.execution_mode}, "
              f"{len(spec.webhooks)} webhook(s), {len(spec.fallback_chain())} fallback(s))")
        if args.canonical:
            print(json.dumps(spec.to_payload(), indent=2, sort_keys=True))
    return status


def _cmd_compile(args: argparse.Namespace) -> int:
    from . import compiled

    if args.clean:
        removed = compiled.clean()
        print(f"removed {len(removed)} compiled modules: pure Python from now on")
        return EXIT_OK
    print(f"compiling {len(compiled.HOT_MODULES)} modules with mypyc (about a minute) ...",
          flush=True)
    try:
        written = compiled.build(verbose=args.verbose)
    except RuntimeError as e:
        _err(str(e))
        return EXIT_FAILED
    except KeyboardInterrupt:
        _err("interrupted: run `apidam compile` again, or `apidam compile --clean`")
        return EXIT_INTERRUPTED
    print(f"wrote {len(written)} extension modules beside their sources; "
          f"`apidam compile --clean` removes them")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from .runtime.planning import PLACEMENTS

    parser = argparse.ArgumentParser(
        prog="apidam",
        description="A deterministic reference engine and simulator of an API dam.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="simulate a scenario and report",
                       description="Simulate a scenario (TOML) and report what the outage does.")
    p.add_argument("scenario", help="a scenario file, or the name of a shipped one")
    p.add_argument("--seed", type=int, help="override the scenario's seed")
    p.add_argument("--set", action="append", metavar="PATH=VALUE",
                   help="override a field, e.g. workloads.diy-immediate.arrivals.rate=500")
    p.add_argument("--out", metavar="DIR",
                   help="output folder (default: a new out/<scenario>/<run id>/, with "
                        "out/<scenario>/latest pointing at it)")
    p.add_argument("--trace", metavar="FILE", help="write the event trace (msgpack)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--wide", action="store_true",
                   help="every column and the cost breakdown (the default fits 100 columns)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no tables")
    p.add_argument("--backend", choices=("local", "ray"), default="local")
    p.add_argument("--ray-address", metavar="ADDR", help="Ray cluster (default: RAY_ADDRESS "
                   "or a local Ray started for the run)")
    p.add_argument("--placement", default="default",
                   choices=PLACEMENTS,
                   help="how actors are grouped onto Ray actors: default (a Ray actor per dam "
                        "region, one for gateway+limiters, one for dispatchers, one for the "
                        "world), regions (dispatchers join their region), single, per-actor")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("sweep", help="run a grid of overrides x seeds",
                       description="Run the cartesian product of --grid values, each with "
                                   "--seeds seeds; write sweep.json and sweep.csv.")
    p.add_argument("scenario")
    p.add_argument("--grid", action="append", metavar="PATH=V1,V2,...",
                   help="a field and its values, e.g. dam.limiter.rate=2,10,50")
    p.add_argument("--seeds", type=int, default=3,
                   help=f"seeds per grid point (default 3; at most {MAX_RUNS:,} runs in all)")
    p.add_argument("--set", action="append", metavar="PATH=VALUE",
                   help="a fixed override applied to every run")
    p.add_argument("--backend", choices=("local", "ray"), default="local")
    p.add_argument("--ray-address", metavar="ADDR")
    p.add_argument("--out", metavar="DIR",
                   help="output folder (default: a new out/sweep-<name>/<run id>/, with "
                        "out/sweep-<name>/latest pointing at it)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--heatmap", metavar="METRIC",
                   help="with two --grid fields: a phase map (heatmap.png, heatmap.csv) of "
                        "METRIC, e.g. success_rate, after.goodput_per_s (a [[windows]] "
                        "entry's) or windows.after.<workload>.success_rate")
    p.add_argument("--heatmap-workload", metavar="NAME",
                   help="the workload the heatmap shows (default: the first)")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("compare", help="put runs (or a sweep's grid points) side by side",
                       description="Compare runs: per workload and domain, each run's key "
                                   "figures beside the first one's, with the difference. A run "
                                   "is a run folder, its summary.json, a scenario's output "
                                   "folder (its latest run) or a sweep (each grid point).")
    p.add_argument("runs", nargs="+", metavar="RUN")
    p.add_argument("--json", action="store_true", help="the comparison as JSON")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("report", help="one self-contained HTML page of a run",
                       description="Write a self-contained HTML report of a run (story, "
                                   "tables, costs, plots, provenance) for a postmortem.")
    p.add_argument("run", metavar="RUN",
                   help="a run folder, its summary.json, or a scenario's output folder")
    p.add_argument("--output", "-o", metavar="FILE",
                   help="where to write it (default RUN/report.html)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("validate", help="validate scenario files",
                       description="Validate scenarios; one line per problem, exit 2 if any.")
    p.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    p.add_argument("--set", action="append", metavar="PATH=VALUE")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("scenarios", help="list the shipped scenarios",
                       description="List the shipped scenarios, one line each.")
    p.set_defaults(func=_cmd_scenarios)

    p = sub.add_parser("check-job", help="validate EZThrottle job payloads (JSON files)",
                       description="Validate job payloads (JSON files) as POST /api/v1/jobs does.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--customer", default="cust_cli", help="customer id to validate for")
    p.add_argument("--canonical", action="store_true",
                   help="print the canonical (snake_case) payload of each valid file")
    p.set_defaults(func=_cmd_check_job)

    p = sub.add_parser("compile", help="build (or remove) the optional compiled simulator",
                       description="Compile the simulator's hot modules with mypyc, in place "
                                   "(pip install -e '.[fast]' first). Results are identical; "
                                   "runs are 1.6-1.8x faster. --clean goes back to pure Python.")
    p.add_argument("--clean", action="store_true", help="remove the compiled modules")
    p.add_argument("--verbose", action="store_true", help="show the compiler's output")
    p.set_defaults(func=_cmd_compile)

    from live.cli import add_serve_parser

    add_serve_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on usage errors, 0 on --help
        return int(e.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded in provenance
    if args.command in ("run", "sweep", "serve"):  # a stale build would run the old code
        from .compiled import stale_build_problem

        problem = stale_build_problem()
        if problem:
            _err(problem)
            return EXIT_USAGE
    try:
        return int(args.func(args))
    except KeyboardInterrupt:  # outside a run's own trap (e.g. while writing its files)
        _err("interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
