"""kopf handlers: thin; validate the body, call reconcile, report."""
