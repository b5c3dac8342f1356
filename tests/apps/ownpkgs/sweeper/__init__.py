"""The app's own `sweeper` package."""

OWNER = "app"
