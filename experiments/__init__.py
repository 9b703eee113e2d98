"""experiments (see ../shared/design.md)."""
