"""What a query says about the patient: validated input models shared by the CLI and HTTP."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_CONDITIONS = 500
MAX_MEDICATIONS = 200
MAX_ALLERGIES = 200


class Coded(BaseModel):
    """A medication, condition or allergy: a code (CURIE, e.g. ``RXNORM:11289``), a text, or
    both (then they must agree)."""

    model_config = ConfigDict(extra="forbid")

    code: str | None = Field(default=None, max_length=200, examples=["RXNORM:11289"])
    text: str | None = Field(default=None, max_length=500, examples=["warfarin"])

    @model_validator(mode="after")
    def _code_or_text(self) -> Coded:
        if not (self.code or self.text):
            raise ValueError("give a code (e.g. RXNORM:11289), a text (e.g. warfarin), or both")
        return self

    def label(self) -> str:
        return " / ".join(x for x in (self.text, self.code) if x)


class Lab(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(max_length=200, examples=["LOINC:2160-0"])
    value: float
    unit: str = Field(default="", max_length=50)


class Patient(BaseModel):
    """The patient facts a query may use."""

    model_config = ConfigDict(extra="forbid")

    medications: list[Coded] = Field(default_factory=list, max_length=MAX_MEDICATIONS)
    conditions: list[Coded] = Field(default_factory=list, max_length=MAX_CONDITIONS)
    allergies: list[Coded] = Field(default_factory=list, max_length=MAX_ALLERGIES)
    labs: list[Lab] = Field(default_factory=list, max_length=1000)
    phenotypes: list[str] = Field(default_factory=list, max_length=500)
    excluded_phenotypes: list[str] = Field(default_factory=list, max_length=500)
    age: float | None = Field(default=None, ge=0, le=150)
    sex: Literal["male", "female", "other", "unknown", "MALE", "FEMALE", ""] | None = None


class Query(BaseModel):
    """One question to the reasoner: an id (echoed in the answer) and the patient."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(max_length=200)
    patient: Patient = Field(default_factory=Patient)
