"""Atomic writes of files and folders and safe names, for the package: re-exported from
`data_scripts.fileio`, their one home (the lower layer, so the data code shares it without
importing the model). See that module for what each function guarantees."""

from data_scripts.fileio import (
    child_path,
    clean_stale_temporaries,
    match_umask,
    plain_name_problem,
    publish_folder,
    safe_name,
    staging_folder,
    write_text_atomic,
    write_via_temporary,
)

__all__ = [
    "child_path",
    "clean_stale_temporaries",
    "match_umask",
    "plain_name_problem",
    "publish_folder",
    "safe_name",
    "staging_folder",
    "write_text_atomic",
    "write_via_temporary",
]
