"""Visitors: invitations with a temporary door credential, check-in and check-out, the roll call, retention."""
