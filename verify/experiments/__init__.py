"""The numeric side of each paper: one module per paper, one :class:`~verify.records.Experiment`
per theorem (its bridge, training and control stages).

A paper's registration (:mod:`verify.papers`) names each theorem's experiment as
``"module:attribute"``; the module is imported only when the theorem runs (it loads torch).
"""
