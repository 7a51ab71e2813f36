"""Pure reconcile logic: desired vs. observed -> actions; status and conditions from children."""
