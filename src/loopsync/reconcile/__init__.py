"""The reconciler, as a package: candidates → plan → effects, with returns, recovery and the report.

``plan`` decides without I/O; ``effects`` is the only part that writes to Shopify,
Loop or the state file; ``reconciler`` runs a scan, one order, or a release by hand.
"""

from loopsync.reconcile.reconciler import Reconciler
from loopsync.reconcile.report import Action, OrderOutcome, ScanInterrupted, ScanReport

__all__ = ["Action", "OrderOutcome", "Reconciler", "ScanInterrupted", "ScanReport"]
