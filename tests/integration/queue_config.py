"""Config files for daemon tests that poll Together queues on the simulator."""

from __future__ import annotations

from pathlib import Path

KEY_ENV = "TEST_TOGETHER_KEY"


def queue_config(
    tmp_path: Path,
    sim_url: str,
    models: list[str],
    *,
    interval: str = "1s",
    timeout: str = "500ms",
    stale_grace: str = "5m",
    together_extra: list[str] | None = None,
    name: str = "config.yaml",
) -> Path:
    lines = [
        "global:",
        f"  poll_interval: {interval}",
        f"  timeout: {timeout}",
        "  start_spread: 200ms",
        f"  stale_grace: {stale_grace}",
        "together:",
        f"  base_url: {sim_url}/v1",
        f"  api_key_env: {KEY_ENV}",
        *[f"  {line}" for line in together_extra or []],
        "  queues:",
        *[f"    - model: {m}" for m in models],
    ]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def target(model: str) -> dict[str, str]:
    """The self-metric labels of a queue target."""
    return {"target": f"together_queue/{model}", "source": "together_queue"}
