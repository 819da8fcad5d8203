"""People who sign in: users and roles (users.py), API tokens (tokens.py), who may see what
(access.py, the one place for it) and the audit log of what they did (audit.py)."""
