"""The ``mixnas dashboard`` command (registered by :func:`register`).

``mixnas dashboard RUN [RUN ...] [-o report.html] [--js inline|file] [--screenshot PNG] [--serve [--port P]
[--optuna-dashboard]]`` writes one offline HTML report of one or several search runs (see docs/dashboards.md)
through :func:`mixnas.api.write_dashboard`, then renders or serves it.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from mixnas.cli.signals import terminate_as_interrupt
from mixnas.errors import MixnasError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="offline HTML report of search runs: Pareto fronts, hypervolume, "
                                         "importance, design-space EDFs",
                       description="Write one HTML report (plotly, offline) of one or several search runs; with "
                                   "several runs it compares them side by side and as design spaces (error EDFs).")
    p.add_argument("runs", nargs="+", metavar="RUN", help="search run folders (with search.yaml and the study)")
    p.add_argument("-o", "--out", help="report file (default: RUN/report.html for one run, report.html for several)")
    p.add_argument("--js", default="inline", choices=["inline", "file"],
                   help="plotly.js inside the report (inline, default: one self-contained file) or as "
                        "plotly.min.js in the report's _files folder")
    p.add_argument("--bootstrap", type=int, default=400, help="bootstrap resamples of the EDF bands (default 400)")
    p.add_argument("--screenshot", metavar="PNG", help="also render the report in headless Chromium to a PNG")
    p.add_argument("--serve", action="store_true", help="serve the report on 127.0.0.1 until interrupted")
    p.add_argument("--port", type=int, default=8050, help="port for --serve (default 8050; 0: any free port)")
    p.add_argument("--optuna-dashboard", action="store_true",
                   help="with --serve, also start optuna-dashboard on the first run's study storage (port+1; "
                        "needs `pip install 'mixnas[dashboard]'`)")
    p.set_defaults(func=cmd_dashboard)


def cmd_dashboard(args: argparse.Namespace) -> int:
    from mixnas import api

    runs = [api.load_run(r) for r in args.runs]  # every path is checked before anything is written
    report = api.write_dashboard(runs, args.out, js=args.js, bootstrap=args.bootstrap)
    print(f"wrote {report.path} ({report.bytes / 1e6:.2f} MB, {report.figures} figures; its files (trial YAMLs"
          f"{', plotly.min.js' if args.js == 'file' else ''}) in {report.files}, {report.files_bytes / 1e3:.0f} kB)",
          flush=True)
    if args.screenshot:
        from mixnas.browser import screenshot

        screenshot(report.path, args.screenshot)
        print(f"wrote {args.screenshot}", flush=True)
    if args.serve:
        serve(report.path, args.port, runs[0].storage_url if args.optuna_dashboard else None)
    return 0


def serve(report: Path, port: int, storage: str | None = None) -> None:
    """Serve the report's folder on 127.0.0.1 (and optuna-dashboard on ``storage``) until interrupted."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(report.parent.resolve()))
    try:
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as err:
        raise MixnasError(f"--serve: cannot listen on 127.0.0.1:{port}: {err.strerror}") from None
    host, bound = httpd.server_address[:2]
    print(f"serving http://{host}:{bound}/{report.name} (Ctrl-C to stop)", flush=True)
    proc = None
    if storage:
        exe = shutil.which("optuna-dashboard")
        if exe is None:
            print("optuna-dashboard is not installed (pip install 'mixnas[dashboard]'); serving the report only",
                  file=sys.stderr, flush=True)
        else:
            # optuna-dashboard takes a journal file by its path, without mixnas's "journal:" prefix
            url = storage[len("journal:"):] if storage.startswith("journal:") else storage
            proc = subprocess.Popen([exe, url, "--host", "127.0.0.1", "--port", str(bound + 1)])
            print(f"optuna-dashboard: http://127.0.0.1:{bound + 1}/", flush=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    with terminate_as_interrupt():  # `kill` stops optuna-dashboard too, as Ctrl-C does
        try:
            thread.join()
        finally:
            httpd.shutdown()
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)
