"""spark-submit entry points. Each is thin: parse --conf, read, call udfs, write."""
