"""Employees: their rules (ids, cards, PINs, CSV import) and the in-memory index punches resolve with."""
