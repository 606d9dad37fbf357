"""Online learners and link prediction that propose new knowledge from patient records."""
