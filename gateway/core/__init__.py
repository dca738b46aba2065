"""What every part shares: the neutral event types, time, metrics, retry and asyncio helpers."""
