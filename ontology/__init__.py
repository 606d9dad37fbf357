"""The OWL ontology that is the KG's schema, curator edits, consistency checks and publishing."""
