"""Training and evaluation: prepare labeled tables, fit a head or fine-tune, register the result, and
compare candidates with the champion on the same rows before moving an alias."""
