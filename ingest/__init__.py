"""Source loaders, patient-record parsing and entity linking: how knowledge and records get in."""
