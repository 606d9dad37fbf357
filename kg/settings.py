"""The one ``Settings`` object: every option, read from ``EVOCDSS_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
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

    # --- HTTP API (api/) --------------------------------------------------------------------

    api_keys: SecretStr = SecretStr("")
    """API keys and their roles, ``key:role`` separated by commas (roles: clinician, curator,
    ingest, admin), e.g. ``EVOCDSS_API_KEYS="k3y...:clinician,s3cr3t...:curator"``. Keys are at
    least 16 characters; clients send ``Authorization: Bearer <key>``."""

    api_keys_file: Path | None = None
    """A file of API keys, one ``key:role`` per line (``#`` comments and blank lines skipped);
    used together with ``api_keys``."""

    api_open_access: bool = False
    """Development only: with no API key configured, serve every request as role ``admin``
    instead of refusing to start. Never set it on a server that holds real patient data."""

    api_cors_origins: str = ""
    """Web origins allowed to call the API from a browser (CORS), separated by commas, e.g.
    ``https://ehr.example.org`` for an EHR whose CDS Hooks client runs in the browser. Their
    preflight requests are answered without an API key; every other request still needs one.
    Empty: no cross-origin access."""

    api_max_body_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    """Largest request body accepted (bytes); larger ones get 413."""

    api_rate_per_second: float = Field(default=100.0, gt=0)
    """Requests per second each API key may make on average (token bucket); over it: 429."""

    api_rate_burst: int = Field(default=200, ge=1)
    """Requests an API key may make at once before the rate limit applies (bucket size)."""

    api_audit_log: Path | None = None
    """The append-only audit log of the HTTP API (JSON lines, no patient data); default
    ``<home>/audit.log``."""

    api_feedback_db: Path | None = None
    """The SQLite file of CDS Hooks cards issued and clinicians' feedback on them; default
    ``<home>/feedback.sqlite``."""

    # --- online learners (learners/) -------------------------------------------------------

    learners_dir: Path | None = None
    """Where the online learners keep their state (``state.pkl``) and the alert feedback model
    (``alert-model.pkl``); default ``<home>/learners``."""

    signal_min_count: int | None = None
    """Signal learner: cases a drug-event pair needs before it is proposed (default 3). This
    and the other ``signal_*`` thresholds apply when the learner state starts afresh."""

    signal_window_days: float | None = None
    """Signal learner: days after a drug start an event counts (default 90)."""

    signal_washout_days: float | None = None
    """Signal learner: days in care before an order counts as a new start (default 90)."""

    @property
    def learners_path(self) -> Path:
        return self.learners_dir or self.home / "learners"

    @property
    def audit_log_path(self) -> Path:
        return self.api_audit_log or self.home / "audit.log"

    @property
    def feedback_path(self) -> Path:
        return self.api_feedback_db or self.home / "feedback.sqlite"

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
