"""What Together's fine-tune API defines: job statuses and the form of a job id."""

from __future__ import annotations

import re
from typing import Literal, get_args

JobStatus = Literal[
    "pending",
    "queued",
    "running",
    "compressing",
    "uploading",
    "cancel_requested",
    "cancelled",
    "error",
    "completed",
]

KNOWN_STATUSES: tuple[JobStatus, ...] = get_args(JobStatus)
TERMINAL_STATUSES: frozenset[JobStatus] = frozenset({"cancelled", "error", "completed"})
# What discovery watches unless told otherwise: every job that has not finished yet.
UNFINISHED_STATUSES: tuple[JobStatus, ...] = tuple(s for s in KNOWN_STATUSES if s not in TERMINAL_STATUSES)

# A job id as the vendor issues them (``ft-`` and a uuid-like tail). Also used for ids
# read from the job list, as they end up in request paths.
JOB_ID_RE = re.compile(r"^ft-[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
