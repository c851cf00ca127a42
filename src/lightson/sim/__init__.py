"""The simulated world and the engine that runs the production control code in it.

``build_world`` makes the truth a site lives through (noisy building load, PV from the
weather, trips that run early or late, events announced the day before); ``simulate_site``
steps it on a simulated clock with a controller from ``control.controllers`` and the
safety layer, exactly as the live server will.
"""
