"""What the jobs read and write around the tasks: their configuration and command line, inputs, atomic
outputs (folders, tables, streams), storage and leases, MLflow runs, reports and the sample datasets."""
