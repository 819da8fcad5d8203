"""Meeting series (RFC 5545 recurrence in the group's wall-clock time) and their occurrences."""
