"""The run's configuration, parsed once and never mutated: the typed argument dataclasses (`arguments`) and the
parser that reads a YAML preset plus CLI overrides into them, checking every value before anything loads
(`parsing`). Imports `core` and the method registry (each method brings its argument dataclass).
"""
