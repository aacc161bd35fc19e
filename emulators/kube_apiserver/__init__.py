"""An emulated Kubernetes API server for Jobs, CronJobs, pods and Events."""

from emulators.kube_apiserver.cluster import Cluster
from emulators.kube_apiserver.server import KubeApiServer
from emulators.kube_apiserver.store import ObjectStore

__all__ = ["Cluster", "KubeApiServer", "ObjectStore"]
