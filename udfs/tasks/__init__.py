"""The tasks: one module per task (its predict function, result fields and public UDF factory), the task
table the jobs and SQL build from, and apply_tasks, which composes several tasks over one DataFrame."""
import udfs.tasks.serving  # noqa: F401 - registers the MLflow pyfunc face's plan (udfs.models.face)
