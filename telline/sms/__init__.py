"""The SMS line: inbound texts, keywords, consent, outbound pipeline, status callbacks."""
