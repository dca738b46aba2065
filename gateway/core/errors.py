"""What a service answers when it turns a request down: the reason, and the HTTP status it stands for.

Services raise these instead of HTTP errors, so the API and the dashboard can both call them:
the API answers `{"detail": message}` with `status`, the dashboard shows the message on its page.
"""

from __future__ import annotations


class Refused(Exception):
    status = 422

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(Refused):
    status = 404


class Conflict(Refused):
    status = 409


class Invalid(Refused):
    status = 422
