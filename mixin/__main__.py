"""``python -m mixin [--check] [--set NAME=VALUE ...] [--output-dir DIR]``: write (or verify)
the dashboards, alert rules and SLO rules.

Without options it regenerates the committed files from the defaults in mixin/config.py.
``--set`` overrides one setting (an objective, a threshold) for this run, and
``--output-dir`` writes the files under another directory instead of the repository, so
your own objectives need no edit of the code: ``python -m mixin --output-dir out
--set probe_success_objective=0.995 --set slo_period=28d``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from mixin.config import DEFAULT, MixinConfig
from mixin.generate import outputs, repo_root


def overrides(pairs: list[str]) -> MixinConfig:
    """``DEFAULT`` with each ``NAME=VALUE`` applied, the value read as the setting's type."""
    types = {f.name: type(getattr(DEFAULT, f.name)) for f in dataclasses.fields(MixinConfig)}
    changes: dict[str, object] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or name not in types:
            known = ", ".join(sorted(types))
            raise ValueError(f"--set {pair!r}: expected NAME=VALUE with NAME one of: {known}")
        try:
            changes[name] = types[name](raw)
        except ValueError:
            raise ValueError(f"--set {pair!r}: {raw!r} is not a valid {types[name].__name__}") from None
    return dataclasses.replace(DEFAULT, **changes)  # type: ignore[arg-type]  # checked against the fields


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mixin",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Settings and their defaults: mixin/config.py and the README.",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if a written file is out of date")
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a setting of mixin/config.py (repeatable)",
    )
    parser.add_argument(
        "--output-dir", type=Path, help="write under this directory instead of the repository"
    )
    args = parser.parse_args(argv)
    try:
        cfg = overrides(args.settings)
    except ValueError as exc:
        parser.error(str(exc))
    root = args.output_dir if args.output_dir is not None else repo_root()
    stale = []
    for rel, text in outputs(cfg).items():
        path = root / rel
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(rel)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {rel}")
    for rel in stale:
        print(f"{rel} is out of date: run python -m mixin", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
