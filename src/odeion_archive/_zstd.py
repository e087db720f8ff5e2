"""The zstd settings measured for database dumps, shared by tar.zst and encrypted members.

Double-fast matching with matches of at least 7 bytes in a 4 MiB window: on
the benchmark's two data sets (``benchmarks/bench.py``) no larger than zstd
level 1 makes, for about its CPU (see :class:`~odeion_archive.formats.tarzst.TarZstFormat`).
"""

from __future__ import annotations

from typing import Any

import zstandard

__all__ = ["dump_parameters"]


def dump_parameters(**settings: Any) -> zstandard.ZstdCompressionParameters:
    """The measured matching settings, with ``settings`` (threads, job size, checksum...)."""
    return zstandard.ZstdCompressionParameters(
        strategy=zstandard.STRATEGY_DFAST,
        window_log=22,
        chain_log=15,
        hash_log=16,
        search_log=1,
        min_match=7,
        target_length=0,
        **settings,
    )
