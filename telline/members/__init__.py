"""Members as coordinators manage them: records (add, edit, deactivate, list, consent history),
CSV import and export, a number's data export and erasure, and the retention purge of old bodies.

The JSON API and the console call these; nothing here reads a request. Every function that takes a
session flushes and leaves the commit to its caller, so the change and its audit row commit together.
"""
