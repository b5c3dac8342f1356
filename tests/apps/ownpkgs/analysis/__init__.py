"""The app's own `analysis` package."""

OWNER = "app"
