"""The runtime every task shares: the driver plans a UDF for one exact model version (driver.py, plan.py); the
Python worker picks its device, loads the model once and turns each Arrow batch into rows (worker.py)."""
