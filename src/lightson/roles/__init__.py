"""The distributed roles, composed from the CSMS, the control loop, the API and the broker:
``gateway`` (charger connections), ``worker`` (a shard of sites), ``api`` (people)."""
