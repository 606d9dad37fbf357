"""What the routes share: the store, the reasoner, the feedback file, metrics, the salt, and the
online learners (record learners and the alert feedback model)."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from api.alerts import AlertModel
from api.feedback import FeedbackStore
from api.metrics import Metrics
from ingest.fhir import StoreCodeLinker, pseudonym
from kg.settings import Settings
from kg.store import GraphStore
from learners.feedback import model_path
from learners.live import LiveLearners
from reasoner.engine import Reasoner


@dataclass
class ApiContext:
    """One per app: long-lived objects whose caches are per KG version."""

    store: GraphStore
    settings: Settings
    reasoner: Reasoner
    feedback: FeedbackStore
    metrics: Metrics
    salt: str = field(default_factory=lambda: secrets.token_hex(16))
    _linker: StoreCodeLinker | None = field(default=None, repr=False)
    _linker_version: int = -1
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    learners: LiveLearners = field(init=False, repr=False)
    alerts: AlertModel = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.learners = LiveLearners(self.settings)
        self.alerts = AlertModel(model_path(self.settings), self.feedback)
        # Without a configured salt, the learners' own keeps pseudonyms stable across restarts.
        salt = self.settings.pseudonym_salt or self.learners.salt
        if salt:
            self.salt = salt

    def patient_pseudonym(self, patient_id: str) -> str:
        """The pseudonym of ``Patient/<patient_id>``: the one ``PatientContext`` records get."""
        return pseudonym(f"Patient/{patient_id}", self.salt)

    def code_linker(self) -> StoreCodeLinker:
        """The FHIR code linker, renewed when the KG version changes (its cache is per KG)."""
        version = self.store.version()
        with self._lock:
            if self._linker is None or version != self._linker_version:
                self._linker = StoreCodeLinker(self.store)
                self._linker_version = version
            return self._linker


async def api_context(request: Request) -> ApiContext:
    """Dependency: the app's ``ApiContext``."""
    return request.app.state.ctx


Ctx = Annotated[ApiContext, Depends(api_context)]
