"""The run's description: settings, the network as data and the fit flags. Imports only the top-level modules and `rundir.atomic`."""
