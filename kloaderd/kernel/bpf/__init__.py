"""kernel/bpf/: what BPF offers modules (kloader runs no BPF programs)."""
