"""LogCaster: kernel-bypass syslog capture appliance (Python side)."""

__version__ = "0.1.0"
