"""The app's own `data` package."""

OWNER = "app"
