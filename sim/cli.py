"""The ``apidam`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from engine import SpecError, parse_job

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _cmd_check_job(args: argparse.Namespace) -> int:
    """Validate job payload files (JSON) the way the dam's intake does."""
    status = EXIT_OK
    for path in args.files:
        try:
            with open(path, encoding="utf-8") as fh:
                payload = json.load(fh)
        except OSError as e:
            print(f"{path}: cannot read: {e.strerror}", file=sys.stderr)
            status = EXIT_USAGE
            continue
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            print(f"{path}: not JSON: {e}", file=sys.stderr)
            status = EXIT_USAGE
            continue
        try:
            spec = parse_job(payload, args.customer)
        except SpecError as e:
            print(f"{path}: {e.path}: {e.reason}", file=sys.stderr)
            status = EXIT_USAGE
            continue
        print(f"{path}: ok ({spec.method} {spec.domain}, mode {spec.execution_mode}, "
              f"{len(spec.webhooks)} webhook(s), {len(spec.fallback_chain())} fallback(s))")
        if args.canonical:
            print(json.dumps(spec.to_payload(), indent=2, sort_keys=True))
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="apidam",
        description="A deterministic reference engine and simulator of an API dam.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("check-job", help="validate EZThrottle job payloads (JSON files)",
                       description="Validate job payloads (JSON files) as POST /api/v1/jobs does.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--customer", default="cust_cli", help="customer id to validate for")
    p.add_argument("--canonical", action="store_true",
                   help="print the canonical (snake_case) payload of each valid file")
    p.set_defaults(func=_cmd_check_job)
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
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
