"""Kubernetes Jobs, CronJobs and their pods as Switchyard runs (list + watch)."""

from adapters.kubernetes.adapter import KubernetesAdapter, create

__all__ = ["KubernetesAdapter", "create"]
