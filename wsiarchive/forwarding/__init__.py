"""Forwarding: new instances sent on to other archives (STOW-RS or C-STORE) from an outbox
in the index, with retries, in order, once each (docs/operations.md, Forwarding)."""
