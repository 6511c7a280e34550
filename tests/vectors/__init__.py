"""Known-answer vectors built from fixed seeds, checked in as JSON beside their builders.

Regenerate with ``python -m tests.vectors.envelope`` (and the sibling modules);
the tests fail when a builder and its checked-in JSON disagree, so a change to
the wire format is always a deliberate one.
"""
