"""The ``mixnas study`` commands (registered by :func:`register`).

``mixnas study check FILE`` validates a study file and lists its trials; ``mixnas study run FILE [--out RUN]
[--resume] [--data-dir DIR] [--address RAY] [--runner ray|local] [--add-mixer TARGET [--match width|depth]]``
writes every trial as a file, then trains them through Ray Tune (or in this process with ``--runner local``),
resumable (``--add-mixer``: a user's mixer as one more level at matched MACs, :mod:`mixnas.vs_zoo`);
``mixnas study report RUN`` writes report.md / .csv / .tex / .html from the run's result files. ``run`` and
``report`` call :func:`mixnas.api.run_study` and :func:`mixnas.api.study_report`.
"""

from __future__ import annotations

import argparse

from mixnas.errors import MixnasError


def register(sub: argparse._SubParsersAction) -> None:
    study = sub.add_parser("study", help="reproduction studies: factors x levels x seeds, with statistics",
                           description="Run and report the studies of studies/ (see docs/studies.md).")
    ssub = study.add_subparsers(dest="study_command", required=True, metavar="ACTION")
    p = ssub.add_parser("check", help="validate a study file and list its trials")
    p.add_argument("file")
    p.set_defaults(func=cmd_check)
    p = ssub.add_parser("run", help="write every trial as a file, then train them through Ray Tune (resumable)")
    p.add_argument("file")
    p.add_argument("--out", help="run folder (default runs/study-NAME)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out: trials with a completed "
                                                          "result file are skipped, failed ones re-run")
    p.add_argument("--data-dir", help="folder with the dataset files (default: the study's task.data_dir)")
    p.add_argument("--address", help="Ray cluster to run on (ray://HOST:10001 or HOST:6379; default: a local Ray "
                                     "using this machine's cores)")
    p.add_argument("--runner", choices=("ray", "local"), default="ray",
                   help="ray (default): trials in parallel through Ray Tune, as the study's resources allow; "
                        "local: one after another in this process, without Ray")
    p.add_argument("--add-mixer", metavar="TARGET",
                   help="add a token mixer (FILE.py:NAME, module:NAME or a registered NAME) as a level of the "
                        "study's mixer factor at the median MACs of its levels; writes RUN/extended.yaml")
    p.add_argument("--match", choices=("width", "depth"), help="with --add-mixer: adjust the backbone's width "
                                                               "(default) or depth to match the MACs")
    p.set_defaults(func=cmd_run)
    p = ssub.add_parser("report", help="tables (Markdown, CSV, LaTeX) and a seed-spread figure of a study run")
    p.add_argument("run", help="a study run folder")
    p.add_argument("--out", help="folder for the report files (default: the run folder)")
    p.set_defaults(func=cmd_report)


def cmd_check(args: argparse.Namespace) -> int:
    from mixnas.study import level_label, load_study, resolve
    from mixnas.study_run import matched_lines

    study = load_study(args.file)
    trials = resolve(study)
    print(f"study {study.name}: base {study.base}, dataset {study.task['dataset']}, {len(study.levels())} levels x "
          f"{len(study.seeds)} seeds = {len(trials)} trials; baseline {study.baseline}")
    for level in study.levels():
        label = level_label(level)
        paper = (study.paper or {}).get("values", {}).get(label)
        rank = ((study.paper or {}).get("ranks") or {}).get(label)
        print(f"  {label}" + (f"  (paper {paper:g})" if paper is not None else "")
              + (f"  (paper's order: rank {rank:g})" if rank is not None else ""))
    for line in matched_lines(study.to_dict()):
        print(f"  {line}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from mixnas import api

    run = api.run_study(args.file, out=args.out, resume=args.resume, data_dir=args.data_dir, runner=args.runner,
                        address=args.address, add_mixer=args.add_mixer, match=args.match)
    if run.incomplete:
        raise MixnasError(f"{len(run.incomplete)} trial(s) did not complete ({', '.join(run.incomplete[:5])}); see "
                          f"{run.path}/results, then run again with --resume")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from mixnas import api

    paths = api.study_report(args.run, args.out)
    print(paths["md"].read_text())
    print("written: " + ", ".join(str(p) for p in paths.values()))
    return 0
