"""sim (see ../shared/design.md)."""
