"""Who may do what: API tokens, the audit log, device secrets (hashed or sealed at rest)."""
