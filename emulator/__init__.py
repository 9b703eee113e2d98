"""emulator (see ../shared/design.md)."""
