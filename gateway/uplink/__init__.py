"""Store-and-forward to the office platform: the outbox and one worker per sink."""
