"""What a run is: settings, the network as data, the fit flags. Imports only the top level and rundir.atomic."""
