"""Phone meetings: the incoming-call flow, the conference bridge, moderation."""
