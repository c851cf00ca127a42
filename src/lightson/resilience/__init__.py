"""Blackout backup: how long a site's vehicles and PV carry each load tier."""
