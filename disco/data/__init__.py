"""See docs/DEVELOPING.md for what lives here."""
