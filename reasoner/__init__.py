"""Traceable chain-of-thought reasoning over the KG: plans, tools, cited answers."""
