"""Compiler flags for taskfork's own code, in one place."""

# Warnings on for project code; --config=ci makes them errors.
TASKFORK_COPTS = [
    "-Wall",
    "-Wextra",
    # Options structs are filled with designated initializers that name only
    # the fields that differ from their defaults.
    "-Wno-missing-field-initializers",
    "-Wno-sign-compare",
    "-Wno-unused-parameter",
    "-Wnon-virtual-dtor",
    "-Woverloaded-virtual",
    "-Wvla",
]

