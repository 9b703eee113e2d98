"""registry_mock (see ../shared/design.md)."""
