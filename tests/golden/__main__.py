"""``python -m tests.golden [--update]``: compare (or rewrite) every golden exposition."""

from __future__ import annotations

import argparse
import difflib
import sys

from tests.golden import BUILDERS, build, golden_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.golden", description=__doc__)
    parser.add_argument("--update", action="store_true", help="rewrite the golden files from the fixtures")
    args = parser.parse_args(argv)
    stale = 0
    for source in BUILDERS:
        path = golden_path(source)
        new, _ = build(source)
        old = path.read_bytes() if path.exists() else b""
        if new == old:
            continue
        stale += 1
        if args.update:
            path.write_bytes(new)
            print(f"updated {path}")
        else:
            diff = difflib.unified_diff(
                old.decode().splitlines(keepends=True),
                new.decode().splitlines(keepends=True),
                f"{path} (committed)",
                f"{path} (from the fixtures)",
            )
            sys.stdout.writelines(diff)
    if stale and not args.update:
        print(f"{stale} golden file(s) out of date; run: python -m tests.golden --update", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
