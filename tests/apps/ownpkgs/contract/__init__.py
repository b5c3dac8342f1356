"""The app's own `contract` package."""

OWNER = "app"
