"""Typed errors of the KG layer: each says what was wrong and what to do."""


class KGError(Exception):
    """Base class of every error the KG layer raises on purpose."""


class InvalidCurie(KGError, ValueError):
    """An identifier is not a well-formed CURIE."""


class UnknownPredicate(KGError, ValueError):
    """An edge uses a predicate outside the KG's Biolink vocabulary."""


class UnknownCategory(KGError, ValueError):
    """A node uses a category outside the KG's Biolink vocabulary."""


class MissingCitation(KGError, ValueError):
    """An edge cites nothing, or cites a citation the store does not hold."""


class InvalidStatus(KGError, ValueError):
    """A status outside the KG's statuses, or a forbidden status change."""


class StatusConflict(KGError, ValueError):
    """An edge's status is not the one a change expected: another change came first."""


class NotFound(KGError, LookupError):
    """A node or edge that was asked for does not exist."""


class StoreUnavailable(KGError, ConnectionError):
    """The store URL cannot be opened or reached."""
