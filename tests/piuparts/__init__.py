"""piuparts on every binary package."""
