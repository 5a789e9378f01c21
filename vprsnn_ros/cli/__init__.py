"""``vprsnn``: train, evaluate, extend, inspect, replay and demo from the command line.

One module per subcommand, each with ``add_parser(sub)`` and ``run(args)``.
Every error the package raises on purpose ends the command with one line on
stderr and exit status 2; an interrupt with 130.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from vprsnn_ros import __version__
from vprsnn_ros.cli import bag, demo, evaluate, extend, info, replay_eval, train
from vprsnn_ros.errors import ConfigError, VprsnnError

_SUBCOMMANDS = (train, evaluate, extend, info, replay_eval, bag, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vprsnn", description=__doc__.splitlines()[0].replace("``", ""))
    parser.add_argument("--version", action="version", version=f"vprsnn_ros {__version__}")
    parser.add_argument("--threads", type=int, default=0, metavar="N",
                        help="at most N threads for the SNN kernels (0 = every core; calls with little "
                             "work run on one thread anyway, docs/guides/engine-design.md)")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in _SUBCOMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Warnings about the input (e.g. mixed image sizes) as one plain line each.
    warnings.formatwarning = lambda message, *_args, **_kw: f"vprsnn: warning: {message}\n"
    try:
        if args.threads < 0:
            raise ConfigError("--threads must be >= 0 (0 = every core)")
        if args.threads:
            from vprsnn_ros.snn.threads import set_limit

            set_limit(args.threads)
        return args.func(args)
    except VprsnnError as exc:
        _close_progress_bars()
        print(f"vprsnn: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _close_progress_bars()
        print("vprsnn: interrupted", file=sys.stderr)
        return 130


def _close_progress_bars() -> None:
    """End any progress bar still drawn, so that the error line stands on a line of its own."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", None) or []):
        bar.close()


if __name__ == "__main__":
    sys.exit(main())
