"""Example pipelines. Add a module here and it becomes part of the code location."""
