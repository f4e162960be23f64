"""The zone RFC 3164 timestamps are read in (they carry none).

The C decoder takes a fixed offset in seconds; it is taken from the IANA
zone once, at start-up. A run that spans a daylight-saving change keeps the
offset it started with (restart to pick up the new one).
"""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from appliance.errors import ConfigError


def utc_offset_seconds(name: str, at: datetime | None = None) -> int:
    """Seconds east of UTC of zone `name` at `at` (default: now)."""
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"unknown time zone {name!r} (use an IANA name such as UTC or Europe/Berlin)") from exc
    offset = (at or datetime.now(timezone.utc)).astimezone(zone).utcoffset()
    return int(offset.total_seconds()) if offset else 0
