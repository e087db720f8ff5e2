"""Built-in backup components, registered through the same hooks as third-party ones."""
