"""Tracing, metrics and reports of swarmpod (spans per chart state arrive with issue 6)."""

__all__: list[str] = []
