"""The app's own `trainer` package."""

OWNER = "app"
