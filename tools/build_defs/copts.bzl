"""Compiler flags for taskfork's own code, in one place (STYLE.md rule 5)."""

# Warnings on for project code; --config=ci makes them errors.
TASKFORK_COPTS = [
    "-Wall",
    "-Wextra",
    "-Wno-sign-compare",
    "-Wno-unused-parameter",
    "-Wnon-virtual-dtor",
    "-Woverloaded-virtual",
    "-Wvla",
]

