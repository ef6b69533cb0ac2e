"""The monitoring dashboard: one self-contained page of the model's life, month by month.

* :mod:`~creditops.dashboard.timeline` (pure): the monitoring table cut into the
  series the panels draw, on a calendar of every month (gaps stay gaps), with the
  model-version changes and the trigger's decisions to mark on each time axis;
* :mod:`~creditops.dashboard.panels` (pure): one Plotly figure per panel, or the
  reason a panel has nothing to draw yet;
* :mod:`~creditops.dashboard.page`: the HTML page (Plotly inlined: it opens
  offline) written to a file;
* :mod:`~creditops.dashboard.live`: the page served on loopback, re-rendered from
  the table on each visit.
"""
