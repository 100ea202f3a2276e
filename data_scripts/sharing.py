"""Share a materialised stem set on the Hugging Face Hub as Parquet, and read it back.

``push_stem_dataset`` materialises a stem set with :func:`data_scripts.musdb.load_stem_dataset`
and uploads it with ``DatasetDict.push_to_hub`` under the config name of the stem set (e.g.
``vocals-accompaniment``), so several stem sets live side by side in one repo and::

    datasets.load_dataset("user/musdb18-stems", "vocals-accompaniment")

returns the same examples (the README's ``dataset_info`` keeps the ``Array2D`` features; Parquet
row groups stay under ~100 MB, as ``datasets`` sizes them, so one track is read without the rest).
MUSDB18 is licensed for academic / non-commercial use: repos are created private by default;
keep them private or gated.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from data_scripts.musdb import load_stem_dataset, resolve_stem_set


def push_stem_dataset(
    root: str | os.PathLike,
    stem_set: str | Mapping[str, Sequence[str]],
    repo_id: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    private: bool = True,
    token: str | None = None,
    max_shard_size: str | int = "500MB",
    commit_message: str | None = None,
    **load_kwargs,
) -> str:
    """Materialise ``stem_set`` of the tree at ``root`` and push it to ``repo_id`` as Parquet.

    Args:
        root, stem_set, cache_dir, **load_kwargs: as in :func:`load_stem_dataset`.
        repo_id: ``"user/name"`` dataset repo (created if missing).
        private: create the repo private (default; MUSDB18 must not be redistributed publicly).
        token: Hub token (default: the logged-in one / ``HF_TOKEN``).
        max_shard_size: Parquet shard size.

    Returns:
        The config name the stem set was pushed under.
    """
    name, _ = resolve_stem_set(stem_set)
    dsd = load_stem_dataset(root, stem_set, cache_dir=cache_dir, **load_kwargs)
    dsd.push_to_hub(
        repo_id,
        config_name=name,
        private=private,
        token=token,
        max_shard_size=max_shard_size,
        commit_message=commit_message or f"Upload stem set {name!r}",
    )
    return name
