"""The realistic synthetic tax office behind `producers.simulator` (see that module)."""

__all__: list[str] = []
