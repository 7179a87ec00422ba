"""Edge Monitor trainer: synthesis, training, conversion, calibration and evaluation.

Runs on a workstation. Imports :mod:`edge_monitor` for the feature front end
and audio I/O so that training and run time share one code path.
"""
