"""How the daemon process sets up Python's garbage collector, and why.

A full collection stops the event loop, scrapes in flight included, for as long as
it takes to walk every object the collector tracks. The rest of the code keeps that
number small (snapshots are bytes in dicts of str, which the collector does not
track); two settings here make full collections rare and shorter:

- Objects alive at start-up (modules, classes, functions) live as long as the
  process. ``gc.freeze()`` moves them out of the generations, after one collection
  so that no garbage is frozen with them.
- The young generation's threshold goes from CPython's 700 to 5,000: above the
  objects the polls in flight hold at any moment, so those die young instead of
  being promoted and counted towards the next full collection. Full collections
  become several times rarer, for less collector CPU overall, while young
  collections stay short.

The figures behind both are in bench/README.md.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 5000


def tune() -> None:
    """Call once, after the imports and before the targets are built."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
