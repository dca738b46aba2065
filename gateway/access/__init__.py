"""Door access: who may open which door when, decided from in-memory data."""
