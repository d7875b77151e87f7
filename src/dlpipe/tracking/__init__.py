"""Everything that talks to MLflow: runs, lineage, sweeps' parent runs, the model registry
and champion, the run store read without MLflow, run listings."""
