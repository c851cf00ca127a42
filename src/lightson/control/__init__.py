"""The control loop: controllers decide setpoints, the safety layer clamps them.

The same code drives simulated chargers (``lightson.sim``) and, later, real ones.
"""
