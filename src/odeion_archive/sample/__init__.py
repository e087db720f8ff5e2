"""Sample data for trying odeion-archive and testing against it; not on the runtime path.

:func:`seed` fills a migrated, empty Odeion database with deterministic,
realistic rows (:class:`SeedScale` says how many); :func:`load_sample` loads
the schema and the demo's sample data into an empty database;
:func:`compare_databases` and :func:`table_digests` tell whether two databases
hold the same rows. :class:`EmbeddedPostgres` (a PostgreSQL in a directory) and
:func:`migrate` (the Odeion schema) make a database to put them in. The
end-to-end demo (``odeion-archive demo``) is
:mod:`odeion_archive.sample.demo`.
"""

from odeion_archive._postgres import EmbeddedPostgres, embedded_bin_dir
from odeion_archive._schema import migrate
from odeion_archive.sample._compare import (
    DatabaseComparison,
    TableComparison,
    compare_databases,
    table_digests,
)
from odeion_archive.sample._seed import SeedScale, load_sample, seed

__all__ = [
    "DatabaseComparison",
    "EmbeddedPostgres",
    "SeedScale",
    "TableComparison",
    "compare_databases",
    "embedded_bin_dir",
    "load_sample",
    "migrate",
    "seed",
    "table_digests",
]
