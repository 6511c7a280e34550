"""Reads over the folded item rows: the ledger, colours, incentive scores and
reports (the weekly summary, the quarterly bulletin, the ledger as Excel;
docs/reports.md).

Pure parts (no I/O): :mod:`~node.queries.periods` (weeks and quarters in China
time), :mod:`~node.queries.scores` (point lines and rankings from item events),
:mod:`~node.queries.summary` (period counts), :mod:`~node.queries.render`
(Markdown) and :mod:`~node.queries.excel` (the workbook). The I/O shell is
:mod:`~node.queries.ledger` (the ledger's filters and pages),
:mod:`~node.queries.assemble` (report reads), :mod:`~node.queries.figures` (the tree
page's and the board's figures, from the page tallies) and
:mod:`~node.queries.standings` (scores kept per quarter, by
:mod:`~node.queries.keeper`). Nothing here knows HTTP or the node context: each
service (``Ledger``, ``Reports``, ``Figures``, ``TallyKeeper``) is given what it
reads when it is built (node/app.py ``provide``, or the CLI), and
:mod:`node.http.api.reports`, the pages and the ``duban report`` / ``duban export``
commands call it.
"""
