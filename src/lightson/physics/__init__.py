"""Physics as pure functions, one module per topic: battery, trips, profiles, PV."""
