"""Twilio's edge: signature checks (security), TwiML builders (twiml), REST (gateway),
and a local stand-in of Twilio's REST API for tests and the demo (standin)."""
