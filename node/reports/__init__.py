"""Colours, incentive scores and reports: the weekly summary, the quarterly bulletin
and the ledger as Excel (docs/reports.md).

Pure parts (no I/O): :mod:`~node.reports.periods` (weeks and quarters in China
time), :mod:`~node.reports.scores` (point lines and rankings from item events),
:mod:`~node.reports.summary` (period counts), :mod:`~node.reports.render`
(Markdown) and :mod:`~node.reports.excel` (the workbook). The I/O shell is
:mod:`~node.reports.assemble` (database reads), used by :mod:`~node.reports.api`
and the ``duban report`` / ``duban export`` commands.
"""
