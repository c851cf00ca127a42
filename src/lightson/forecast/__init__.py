"""Forecasts of load, PV and plug-in over a plan's grid."""
