"""net/sched/: queueing disciplines and traffic classifiers."""
