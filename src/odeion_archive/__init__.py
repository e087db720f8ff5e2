"""odeion-archive: the backup and restore engine of the Odeion media server."""

from odeion_archive._version import __version__

__all__ = ["__version__"]
