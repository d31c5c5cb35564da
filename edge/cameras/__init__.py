"""Several cameras in one process (the `cameras:` list): a loop per camera (loop.py), one
visit per person across cameras (visits.py), and the runner that shares one face model,
one library owner and one set of outputs between them (runner.py)."""
