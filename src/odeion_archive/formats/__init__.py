"""Built-in archive formats, registered through the same hooks as third-party ones."""
