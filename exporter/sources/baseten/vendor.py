"""What Baseten's API defines: limits and enumerations the config and the source share."""

from __future__ import annotations

# The vendor rejects windows longer than this; we reject them before it does.
MAX_WINDOW_SECONDS = 7 * 86400.0

# Every deployment status the vendor documents (DeploymentStatusV1).
DEPLOYMENT_STATUSES = frozenset(
    {
        "BUILDING",
        "DEPLOYING",
        "DEPLOY_FAILED",
        "LOADING_MODEL",
        "ACTIVE",
        "UNHEALTHY",
        "BUILD_FAILED",
        "BUILD_STOPPED",
        "DEACTIVATING",
        "INACTIVE",
        "FAILED",
        "UPDATING",
        "SCALED_TO_ZERO",
        "WAKING_UP",
    }
)

# What the metrics endpoint returns when no ``metrics=`` is sent (its documented default set).
DEFAULT_METRICS = (
    "baseten_replicas_active",
    "baseten_inference_requests_total",
    "baseten_end_to_end_response_time_seconds",
)
