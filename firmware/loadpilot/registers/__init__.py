# Register images served over Modbus: sunspec (ID, ID+1), powerbrain (8000+), omcci (100+).
