"""drivers/cpufreq/."""
