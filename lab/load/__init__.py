"""Load generation: workload, histograms, client engines, executors, worker processes."""
