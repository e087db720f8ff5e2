"""The rules of the SQL guard: which settings, functions and statements a dump may hold.

Tables only; :mod:`odeion_archive.components.full_db._sqlguard` applies them.
"""

from __future__ import annotations

from typing import Final

from pglast import ast, enums

__all__ = [
    "TRUSTED_EXTENSIONS",
    "_ALTER_TABLE_COMMANDS",
    "_ASSIGN_MODE",
    "_NEVER_FUNCTIONS",
    "_NEVER_SETTINGS",
    "_NEVER_STATEMENTS",
    "_PLAIN_STATEMENTS",
    "_PREAMBLE_SETTINGS",
    "_READING_SETTINGS",
    "_RESTORE_FUNCTIONS",
    "_SAFE_LANGUAGES",
    "_SHARED_OBJECTS",
]

#: Settings that change how the server reads the text of later statements, or
#: who runs them. Only pg_restore's own preamble values pass, and never these:
#: they are refused even when unsafe dumps are allowed.
_READING_SETTINGS: Final = {
    "standard_conforming_strings": "on",
    "client_encoding": "utf8",
}
_NEVER_SETTINGS: Final = frozenset(
    {
        "role",
        "session_authorization",
        "escape_string_warning",
        "backslash_quote",
        "session_replication_role",
        "default_transaction_read_only",
        "transaction_read_only",
        "local_preload_libraries",
        "session_preload_libraries",
    }
)
#: The other settings of pg_restore's preamble, with the values it writes.
_PREAMBLE_SETTINGS: Final = {
    "statement_timeout": {"0"},
    "lock_timeout": {"0"},
    "idle_in_transaction_session_timeout": {"0"},
    "transaction_timeout": {"0"},
    "check_function_bodies": {"false", "off"},
    "xmloption": {"content"},
    "client_min_messages": {"warning"},
    "row_security": {"off"},
    "default_tablespace": {""},
    "default_table_access_method": {"heap"},
    "default_with_oids": {"false", "off"},
}
#: Functions that pg_restore's own SQL calls with SELECT, with constant arguments.
_RESTORE_FUNCTIONS: Final = frozenset(
    {
        "setval",
        "pg_restore_relation_stats",
        "pg_restore_attribute_stats",
        "pg_clear_relation_stats",
        "pg_clear_attribute_stats",
    }
)
#: Functions that reach the server's files, processes, configuration or other
#: servers, or run SQL given as text: refused wherever they appear.
_NEVER_FUNCTIONS: Final = frozenset(
    {
        "pg_read_file",
        "pg_read_binary_file",
        "pg_stat_file",
        "pg_ls_dir",
        "pg_ls_logdir",
        "pg_ls_waldir",
        "pg_ls_tmpdir",
        "pg_ls_archive_statusdir",
        "pg_ls_logicalsnapdir",
        "pg_ls_logicalmapdir",
        "pg_ls_replslotdir",
        "pg_file_write",
        "pg_file_rename",
        "pg_file_unlink",
        "pg_file_sync",
        "pg_logdir_ls",
        "lo_import",
        "lo_export",
        "lo_from_bytea",
        "lo_put",
        "dblink",
        "dblink_exec",
        "dblink_connect",
        "dblink_connect_u",
        "dblink_send_query",
        "pg_terminate_backend",
        "pg_cancel_backend",
        "pg_reload_conf",
        "pg_rotate_logfile",
        "pg_promote",
        "pg_switch_wal",
        "pg_backup_start",
        "pg_backup_stop",
        "pg_create_restore_point",
        "pg_create_physical_replication_slot",
        "pg_create_logical_replication_slot",
        "pg_drop_replication_slot",
        "pg_replication_origin_create",
        "pg_log_backend_memory_contexts",
        "set_config",
        "query_to_xml",
        "query_to_xmlschema",
        "query_to_xml_and_xmlschema",
        "cursor_to_xml",
        "cursor_to_xmlschema",
        "database_to_xml",
        "database_to_xmlschema",
        "database_to_xml_and_xmlschema",
        "schema_to_xml",
        "schema_to_xml_and_xmlschema",
        "table_to_xml",
        "table_to_xml_and_xmlschema",
    }
)
_SAFE_LANGUAGES: Final = frozenset({"sql", "plpgsql"})
#: libpg_query's parse modes of plpgsql expressions from this one on are assignments.
_ASSIGN_MODE: Final = 3
#: Statement kinds that are refused even when unsafe dumps are allowed.
_NEVER_STATEMENTS: Final = {
    ast.TransactionStmt: "transaction control, which would break the restore's single transaction",
    ast.AlterSystemStmt: "ALTER SYSTEM, which changes the server's configuration",
    ast.CreateRoleStmt: "a role change",
    ast.AlterRoleStmt: "a role change",
    ast.AlterRoleSetStmt: "a role change",
    ast.DropRoleStmt: "a role change",
    ast.GrantRoleStmt: "a change of role membership",
    ast.ReassignOwnedStmt: "REASSIGN OWNED",
    ast.CreatedbStmt: "a database outside the one restored",
    ast.DropdbStmt: "a database outside the one restored",
    ast.AlterDatabaseStmt: "a change of the database's own settings",
    ast.AlterDatabaseSetStmt: "a change of the database's own settings",
    ast.AlterDatabaseRefreshCollStmt: "a change of the database's own settings",
    ast.CreateTableSpaceStmt: "a tablespace",
    ast.DropTableSpaceStmt: "a tablespace",
    ast.AlterTableSpaceOptionsStmt: "a tablespace",
    ast.LoadStmt: "LOAD of a server library",
    ast.CreateSubscriptionStmt: "a subscription (it connects to another server)",
    ast.AlterSubscriptionStmt: "a subscription (it connects to another server)",
    ast.CreateEventTrigStmt: "an event trigger",
    ast.AlterEventTrigStmt: "an event trigger",
    ast.CheckPointStmt: "CHECKPOINT",
    ast.VacuumStmt: "VACUUM or ANALYZE",
    ast.ClusterStmt: "CLUSTER",
    ast.ReindexStmt: "REINDEX",
    ast.DiscardStmt: "DISCARD, which resets the session",
    ast.PrepareStmt: "PREPARE",
    ast.ExecuteStmt: "EXECUTE of a prepared statement",
    ast.DeallocateStmt: "DEALLOCATE",
    ast.DeclareCursorStmt: "a cursor",
    ast.ListenStmt: "LISTEN",
    ast.NotifyStmt: "NOTIFY",
    ast.LockStmt: "LOCK TABLE",
}
#: Extensions that PostgreSQL marks trusted: an owner may create them.
TRUSTED_EXTENSIONS: Final = frozenset(
    {
        "btree_gin",
        "btree_gist",
        "citext",
        "cube",
        "dict_int",
        "fuzzystrmatch",
        "hstore",
        "intarray",
        "isn",
        "lo",
        "ltree",
        "pgcrypto",
        "pg_trgm",
        "plpgsql",
        "seg",
        "tablefunc",
        "tcn",
        "tsm_system_rows",
        "tsm_system_time",
        "unaccent",
        "uuid-ossp",
    }
)
#: Objects that the cluster's databases share: a restore never touches them.
_SHARED_OBJECTS: Final = frozenset(
    {
        enums.ObjectType.OBJECT_DATABASE,
        enums.ObjectType.OBJECT_ROLE,
        enums.ObjectType.OBJECT_TABLESPACE,
        enums.ObjectType.OBJECT_SUBSCRIPTION,
        enums.ObjectType.OBJECT_PARAMETER_ACL,
    }
)
#: ALTER TABLE subcommands that pg_restore writes.
_ALTER_TABLE_COMMANDS: Final = frozenset(
    {
        enums.AlterTableType.AT_AddConstraint,
        enums.AlterTableType.AT_ValidateConstraint,
        enums.AlterTableType.AT_ColumnDefault,
        enums.AlterTableType.AT_AddIdentity,
        enums.AlterTableType.AT_SetIdentity,
        enums.AlterTableType.AT_SetNotNull,
        enums.AlterTableType.AT_ClusterOn,
        enums.AlterTableType.AT_ReplicaIdentity,
        enums.AlterTableType.AT_AttachPartition,
        enums.AlterTableType.AT_SetStatistics,
        enums.AlterTableType.AT_SetStorage,
        enums.AlterTableType.AT_SetCompression,
        enums.AlterTableType.AT_SetOptions,
        enums.AlterTableType.AT_SetRelOptions,
        enums.AlterTableType.AT_AddInherit,
        enums.AlterTableType.AT_EnableRowSecurity,
        enums.AlterTableType.AT_ForceRowSecurity,
        enums.AlterTableType.AT_EnableTrig,
        enums.AlterTableType.AT_DisableTrig,
        enums.AlterTableType.AT_EnableAlwaysTrig,
        enums.AlterTableType.AT_EnableReplicaTrig,
        enums.AlterTableType.AT_EnableRule,
        enums.AlterTableType.AT_DisableRule,
    }
)
#: Statement kinds that pg_restore writes and that need no closer look than the
#: function calls of their expressions.
_PLAIN_STATEMENTS: Final = (
    ast.CreateSeqStmt,
    ast.AlterSeqStmt,
    ast.ViewStmt,
    ast.RefreshMatViewStmt,
    ast.CommentStmt,
    ast.CreateTrigStmt,
    ast.CreateEnumStmt,
    ast.CompositeTypeStmt,
    ast.CreateDomainStmt,
    ast.CreateRangeStmt,
    ast.CreateStatsStmt,
)
