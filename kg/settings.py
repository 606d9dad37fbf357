"""The one ``Settings`` object: every option, read from ``EVOCDSS_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """evocdss configuration; each field can be set as ``EVOCDSS_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="EVOCDSS_", extra="ignore")

    home: Path = Path("var")
    """Where the KG file, caches and logs live by default."""

    kg_url: str = ""
    """``sqlite:///path`` (default: ``<home>/kg.sqlite``), or ``neo4j://`` / ``bolt://`` URL."""

    neo4j_user: str = "neo4j"
    neo4j_password: str = ""
    neo4j_database: str = "neo4j"

    pseudonym_salt: str = ""
    """Secret salt of patient pseudonyms (salted hashes of patient ids) and date shifts; keep
    it to get the same pseudonyms across runs. Empty: a random salt per process."""

    @property
    def store_url(self) -> str:
        return self.kg_url or f"sqlite:///{self.home / 'kg.sqlite'}"

    @property
    def sources_dir(self) -> Path:
        """Raw source files unpacked at install time (e.g. the HPO release files)."""
        return self.home / "sources"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once from the environment)."""
    return Settings()
