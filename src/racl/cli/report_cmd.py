"""`racl report RUN_DIR... --out DIR`: a markdown report with figures of search, training and evaluation runs."""
from __future__ import annotations

import argparse

from racl.report import build_report


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="markdown report (with PNG figures) of search/train/evaluate runs")
    p.add_argument("runs", nargs="+", help="run folders (search, training or evaluation outputs)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for report.md and its figures")
    p.add_argument("--title", default="racl report", help="the report's title (default: %(default)s)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    print(build_report(args.runs, args.out, title=args.title))
    return 0
