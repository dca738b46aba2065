"""Office hardware gateway: attendance terminals, door readers and vehicle GPS at the edge."""

__version__ = "0.1.0"
