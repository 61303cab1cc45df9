"""The ``chase`` command line: ``demo``, ``simulate``, ``backtest``, ``report``, ``data``."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

_SUBCOMMANDS = ("demo", "simulate", "backtest", "report", "data")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(prog="chase", description="Carbon-aware GPU power limits for training.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log INFO messages")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in _SUBCOMMANDS:
        try:
            module = importlib.import_module(f"chase_integrations.cli.{name}")
        except ImportError as e:  # an optional part that is not installed
            logging.getLogger(__name__).debug("subcommand %s unavailable: %s", name, e)
            continue
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``chase`` script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    from chase_integrations.errors import ChaseError

    try:
        run = getattr(args, "run", None) or args.func
        return int(run(args) or 0)
    except ChaseError as e:
        print(f"chase {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `chase report r.json | head`: the reader left; no traceback (Python docs' recipe)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a command cut off by its pipe


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
